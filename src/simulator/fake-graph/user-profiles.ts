/**
 * A user node (a PSID of the Page): the User Profile API (`GET /{psid}?fields=`), with its
 * permission rules and the phone-only and transient failures a test can set, and ID matching
 * (`GET /{psid}/ids_for_pages`): the same person's PSIDs on the other Pages of one business, paged.
 */
import { randomBytes } from "node:crypto";
import type { Clock } from "../../core/clock.ts";
import type { Answers } from "./answers.ts";
import type { FakeDirectory } from "./directory.ts";
import { graphFail, invalid, unsupported } from "./graph-errors.ts";
import type { FakeGraphOptions, FakePage } from "./types.ts";

const PROFILE_FIELDS = ["id", "name", "first_name", "last_name", "profile_pic", "locale", "timezone", "gender"];
const DEFAULT_PROFILE_FIELDS = ["id", "name", "first_name", "last_name", "profile_pic"];
const PERMISSIONED_FIELDS: Record<string, string> = { locale: "pages_user_locale", timezone: "pages_user_timezone", gender: "pages_user_gender" };

export class UserProfiles {
  /** `options` is the fake's own: `business` may be replaced while it runs (setBusiness). */
  constructor(
    private readonly options: FakeGraphOptions,
    private readonly directory: FakeDirectory,
    private readonly answers: Answers,
    private readonly clock: Clock,
  ) {}

  profile(page: FakePage, psid: string, params: Record<string, unknown>): Response {
    const fields =
      typeof params.fields === "string"
        ? params.fields
            .split(",")
            .map((f) => f.trim())
            .filter(Boolean)
        : DEFAULT_PROFILE_FIELDS;
    for (const field of fields) {
      if (!PROFILE_FIELDS.includes(field)) invalid(`Tried accessing nonexisting field (${field}) on node type (User)`);
    }
    const user = this.directory.user(page.id, psid);
    if (!user) unsupported("GET", psid);
    if (user.phoneOnly) invalid("No profile available for this user.", 2018218);
    if ((user.profileFailures ?? 0) > 0) {
      user.profileFailures!--;
      graphFail(2, "An unexpected error has occurred. Please retry your request later.", { status: 500, isTransient: true });
    }
    for (const field of fields) {
      const permission = PERMISSIONED_FIELDS[field];
      if (permission && !user.permissions?.includes(permission) && !page.scopes?.includes(permission)) {
        invalid("Insufficient permission to access user profile", 2018247);
      }
    }
    const profile = { ...user.profile };
    if (profile.name === undefined && (profile.first_name !== undefined || profile.last_name !== undefined)) {
      profile.name = [profile.first_name, profile.last_name].filter((s) => s !== undefined).join(" ");
    }
    const out: Record<string, unknown> = {};
    for (const field of fields) {
      if (field === "id") continue;
      if (field === "profile_pic") out.profile_pic = this.#profilePic(psid, profile.profile_pic);
      else if (profile[field] !== undefined) out[field] = profile[field];
    }
    out.id = psid;
    return this.answers.ok(out);
  }

  idsForPages(page: FakePage, psid: string, params: Record<string, unknown>, url: URL): Response {
    const user = this.directory.user(page.id, psid);
    if (!user) unsupported("GET", psid);
    const business = this.options.business?.[page.id];
    const rows: { id: string; page: Record<string, string> }[] = [];
    if (business !== undefined && user.person !== undefined) {
      const others = this.directory
        .pages()
        .filter((p) => p.id !== page.id && this.options.business?.[p.id] === business)
        .sort((a, b) => a.id.localeCompare(b.id));
      for (const other of others) {
        if (params.page !== undefined && String(params.page) !== other.id) continue;
        for (const [otherPsid, candidate] of this.directory.usersOf(other.id)) {
          if (candidate.person !== user.person) continue;
          rows.push({
            id: otherPsid,
            page: { id: other.id, name: other.name ?? `Page ${other.id}`, category: "Business", link: `https://www.facebook.com/${other.id}` },
          });
        }
      }
    }
    const limit = Math.max(1, Math.min(100, Number(params.limit ?? 25) || 25));
    const start = typeof params.after === "string" ? decodeCursor(params.after) + 1 : 0;
    const data = rows.slice(start, start + limit);
    if (data.length === 0) return this.answers.ok({ data: [] });
    const end = start + data.length;
    const paging: Record<string, unknown> = { cursors: { before: encodeCursor(start), after: encodeCursor(end - 1) } };
    if (end < rows.length) {
      const next = new URL(url);
      next.searchParams.set("after", encodeCursor(end - 1));
      next.searchParams.set("limit", String(limit));
      paging.next = next.toString();
    }
    return this.answers.ok({ data, paging });
  }

  /** The configured picture URL (or a generated one) with an `ext=` expiry, epoch seconds, a day ahead. */
  #profilePic(psid: string, configured: unknown): string {
    const url = new URL(typeof configured === "string" ? configured : "https://platform-lookaside.fbsbx.test/platform/profilepic/");
    if (typeof configured !== "string") url.searchParams.set("psid", psid);
    if (!url.searchParams.has("ext")) url.searchParams.set("ext", String(Math.floor(this.clock.now() / 1000) + 86_400));
    if (!url.searchParams.has("hash")) url.searchParams.set("hash", randomBytes(8).toString("base64url"));
    return url.toString();
  }
}

function encodeCursor(index: number): string {
  return Buffer.from(`cursor:${index}`).toString("base64url");
}

function decodeCursor(cursor: string): number {
  const match = /^cursor:(\d+)$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!match) invalid("param after is not a valid cursor");
  return Number(match[1]);
}
