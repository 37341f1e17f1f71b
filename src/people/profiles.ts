/**
 * A PSID's Facebook profile from the User Profile API, and how long an answer is kept. Answers
 * are cached per PSID, negative ones too: a profile until the `ext=` expiry of its picture URL (at
 * most a week), "no profile" (2018218) for a week, "no permission" for a day, any other failure
 * for ten minutes. A failed fetch never fails the turn.
 */
import type { Logger } from "../log/logger.ts";
import { GraphApiError, type GraphClient, type PageCredentials } from "../messenger/graph.ts";
import type { UserKey } from "../core/user-key.ts";
import type { ProfileStatus, StoredUser } from "./store.ts";

export const BASE_FIELDS = ["first_name", "last_name", "profile_pic"] as const;
/** Need the Page's app to have the pages_user_locale / _timezone / _gender permissions. */
export const EXTRA_FIELDS = ["locale", "timezone", "gender"] as const;
const PROFILE_KEYS = ["id", ...BASE_FIELDS, ...EXTRA_FIELDS];

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
export const PROFILE_TTL = { ok: DAY, okMax: 7 * DAY, unavailable: 7 * DAY, denied: DAY, error: 10 * MINUTE } as const;

export class FacebookProfiles {
  /** Pages whose app may not read locale/timezone/gender, until when. */
  readonly #noExtras = new Map<string, number>();

  constructor(private readonly graph: GraphClient) {}

  /**
   * Asks Facebook for the PSID's profile and records the answer (or the failure, and until when
   * it is kept) in `user`.
   */
  async refresh(user: StoredUser, key: UserKey, creds: PageCredentials, now: number, log: Logger, mask: boolean): Promise<void> {
    const pageKey = `${key.endpointId}\u0000${key.pageId}`;
    let extras = (this.#noExtras.get(pageKey) ?? 0) <= now;
    for (;;) {
      const fields = extras ? [...BASE_FIELDS, ...EXTRA_FIELDS] : [...BASE_FIELDS];
      try {
        const answer = await this.graph.profile(creds, key.userId, fields);
        const profile: Record<string, unknown> = {};
        for (const k of PROFILE_KEYS) if (answer[k] !== undefined && answer[k] !== null) profile[k] = answer[k];
        user.profile = profile;
        user.profileStatus = "ok";
        user.profileExpiresAt = profileExpiry(profile, now);
        return;
      } catch (error) {
        const status = classifyProfileError(error);
        if (status === "denied" && extras) {
          // The app lacks pages_user_locale / _timezone / _gender: ask for the base fields only.
          this.#noExtras.set(pageKey, now + PROFILE_TTL.denied);
          log.info("the Page's app may not read locale, timezone or gender (App Review permissions); profiles are fetched without them");
          extras = false;
          continue;
        }
        if (status === "error") log.warn("could not fetch the user's Facebook profile; the turn goes on without it", errorFields(error, mask));
        else if (status === "denied")
          log.warn(
            "the Page's app may not read user profiles: it needs Advanced Access to Business Asset User Profile Access, or turn request_profile_data off",
          );
        // A failure keeps what we had (a profile fetched before stays usable until it can be renewed).
        if (status !== "error" || user.profileStatus !== "ok") user.profileStatus = status;
        if (status !== "error") user.profile = null;
        user.profileExpiresAt = now + PROFILE_TTL[status];
        return;
      }
    }
  }
}

/**
 * An error for the log. Graph's messages and URLs name the PSID ("Object with ID '…'",
 * "GET /6301…"), so with mask_logging only its kind and codes are written.
 */
export function errorFields(error: unknown, mask: boolean): Record<string, unknown> {
  if (!mask) return { error };
  if (error instanceof GraphApiError) return { error: { name: error.name, code: error.code, subcode: error.subcode, type: error.type, status: error.status } };
  return { error: { name: (error as Error)?.name ?? "Error" } };
}

/** What an error from the User Profile API means for the cache. */
export function classifyProfileError(error: unknown): ProfileStatus {
  if (!(error instanceof GraphApiError)) return "error";
  if (error.subcode === 2018218) return "unavailable"; // no profile (phone-number account)
  if (error.code === 100 && error.subcode === 33) return "unavailable"; // no such user for this Page
  if (error.subcode === 2018247 || error.code === 10 || (error.code >= 200 && error.code <= 299)) return "denied";
  return "error";
}

/** The `ext=` expiry (epoch seconds) of the picture URL, a few minutes early; a day without one; at most a week. */
export function profileExpiry(profile: Record<string, unknown>, now: number): number {
  let expires = now + PROFILE_TTL.ok;
  if (typeof profile.profile_pic === "string") {
    try {
      const ext = Number(new URL(profile.profile_pic).searchParams.get("ext"));
      if (Number.isFinite(ext) && ext > 0) expires = ext * 1000 - 5 * MINUTE;
    } catch {
      // not a URL: keep the default
    }
  }
  return Math.min(Math.max(expires, now + 5 * MINUTE), now + PROFILE_TTL.okMax);
}
