/**
 * The Page's Messenger profile (docs/messenger-profile.md): Get Started, greetings, persistent menu, ice breakers,
 * whitelisted domains, declared in `[endpoints.messenger_profile]`.
 *
 * `serve` applies it to each Page in the background after start, and
 * `POST /api/endpoints/{id}/messenger-profile` on demand: read what the Page has
 * (`GET /me/messenger_profile`), and write only the declared fields that differ. Meta allows about
 * 10 calls per 10 minutes per Page for this API, so the calls are counted per Page and a start
 * whose settings did not change since the last successful apply makes no call at all (the
 * fingerprint of what was applied is kept in the database). A failure is logged and reported on
 * `/api/endpoints`, never fatal. Fields not declared are left as the Page has them.
 */
import { createHash } from "node:crypto";
import type { EndpointSettings, MessengerProfileSettings } from "../config/schema.ts";
import { flattenMenu } from "../config/messenger-profile.ts";
import type { Database } from "../db/client.ts";
import { column } from "../db/rows.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import { isGraphError, type GraphClient, type PageCredentials } from "./graph.ts";

export const RATE_LIMIT = { calls: 10, windowMs: 10 * 60_000 } as const;

/** The declared profile in the Messenger Profile API's shape. */
export function desiredProfile(settings: MessengerProfileSettings): Record<string, unknown> {
  const profile: Record<string, unknown> = {};
  if (settings.get_started_payload) profile.get_started = { payload: settings.get_started_payload };
  if (settings.greeting) {
    const locales = Object.keys(settings.greeting).sort((a, b) => (a === "default" ? -1 : b === "default" ? 1 : a.localeCompare(b)));
    profile.greeting = locales.map((locale) => ({ locale, text: settings.greeting![locale] }));
  }
  if (settings.persistent_menu) {
    profile.persistent_menu = settings.persistent_menu.map((m) => ({
      locale: m.locale,
      composer_input_disabled: m.composer_input_disabled,
      ...((m.call_to_actions ?? []).length > 0 ? { call_to_actions: flattenMenu(m.call_to_actions ?? [], () => {}) } : {}),
    }));
  }
  if (settings.ice_breakers) {
    const byLocale = new Map<string, { question: string; payload: string }[]>();
    for (const q of settings.ice_breakers) byLocale.set(q.locale, [...(byLocale.get(q.locale) ?? []), { question: q.question, payload: q.payload }]);
    profile.ice_breakers = [...byLocale].map(([locale, call_to_actions]) => ({ locale, call_to_actions }));
  }
  if (settings.whitelisted_domains) profile.whitelisted_domains = settings.whitelisted_domains;
  return profile;
}

export interface PageProfileResult {
  page_id: string;
  status: "unchanged" | "updated" | "failed" | "rate_limited" | "skipped";
  fields?: string[];
  error?: string;
  retry_after_seconds?: number;
  at: string;
}

export interface MessengerProfilesDeps {
  database: Database;
  writes: WriteQueue;
  graph: GraphClient;
  credentials(endpointId: string, pageId: string): PageCredentials | undefined;
  clock: Clock;
  log: Logger;
}

export class MessengerProfiles {
  /** Calls made per Page (times), for Meta's rate limit. */
  readonly #calls = new Map<string, number[]>();
  readonly #last = new Map<string, PageProfileResult>();

  constructor(private readonly deps: MessengerProfilesDeps) {}

  /** The last result per Page of the endpoint (for /api/endpoints). */
  status(endpointId: string, pageId: string): PageProfileResult | undefined {
    return this.#last.get(`${endpointId}\u0000${pageId}`);
  }

  /** Applies every endpoint's declared profile; at start, Pages whose profile was applied as it is now are skipped. */
  async applyAll(endpoints: EndpointSettings[]): Promise<void> {
    for (const endpoint of endpoints) if (endpoint.messenger_profile) await this.apply(endpoint, { force: false });
  }

  /** Applies the endpoint's profile to each of its Pages; `force` reads the Page even if nothing changed here. */
  async apply(endpoint: EndpointSettings, options: { force: boolean }): Promise<PageProfileResult[]> {
    const results: PageProfileResult[] = [];
    if (!endpoint.messenger_profile) return results;
    const desired = desiredProfile(endpoint.messenger_profile);
    const fingerprint = createHash("sha256").update(JSON.stringify(desired)).digest("hex").slice(0, 32);
    for (const page of endpoint.pages) {
      const result = await this.#applyToPage(endpoint.id, page.id, desired, fingerprint, options.force);
      this.#last.set(`${endpoint.id}\u0000${page.id}`, result);
      results.push(result);
    }
    return results;
  }

  async #applyToPage(endpointId: string, pageId: string, desired: Record<string, unknown>, fingerprint: string, force: boolean): Promise<PageProfileResult> {
    const log = this.deps.log.child({ endpoint: endpointId, page: pageId });
    const at = new Date(this.deps.clock.now()).toISOString();
    const metaKey = `messenger_profile:${endpointId}:${pageId}`;
    if (!force && (await this.#applied(metaKey)) === fingerprint) return { page_id: pageId, status: "unchanged", at };
    const creds = this.deps.credentials(endpointId, pageId);
    if (!creds) return { page_id: pageId, status: "skipped", error: "the Page is paused or not in the settings", at };
    const fields = Object.keys(desired);
    const wait = this.#room(pageId, 2);
    if (wait > 0) {
      log.warn(`Messenger profile not applied: Meta allows ${RATE_LIMIT.calls} calls per 10 minutes per Page; try again in ${Math.ceil(wait / 1000)} s`);
      return { page_id: pageId, status: "rate_limited", retry_after_seconds: Math.ceil(wait / 1000), at };
    }
    try {
      this.#count(pageId);
      const current = await this.deps.graph.request<{ data?: Record<string, unknown>[] }>(creds, "GET", "/me/messenger_profile", undefined, {
        fields: fields.join(","),
      });
      const has = Object.assign({}, ...(current.data ?? [])) as Record<string, unknown>;
      const differing = fields.filter((f) => canonical(has[f]) !== canonical(desired[f]));
      if (differing.length > 0) {
        // get_started goes with a menu: Meta checks the menu against the Get Started the Page has.
        const update = Object.fromEntries(differing.map((f) => [f, desired[f]]));
        this.#count(pageId);
        await this.deps.graph.request(creds, "POST", "/me/messenger_profile", update);
        log.info("Messenger profile applied", { fields: differing });
      }
      await this.deps.writes.run([
        {
          sql: "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
          args: [metaKey, fingerprint, this.deps.clock.now()],
        },
      ]);
      return differing.length > 0 ? { page_id: pageId, status: "updated", fields: differing, at } : { page_id: pageId, status: "unchanged", at };
    } catch (error) {
      const message = isGraphError(error) || error instanceof Error ? error.message : String(error);
      log.error(
        `could not apply the Messenger profile (the bot works without it; fix [endpoints.messenger_profile] or the Page token, then POST /api/endpoints/${endpointId}/messenger-profile): ${message}`,
      );
      return { page_id: pageId, status: "failed", error: message, at };
    }
  }

  async #applied(key: string): Promise<string | null> {
    const rows = await this.deps.database.client.execute({ sql: "SELECT value FROM meta WHERE key = ?", args: [key] });
    return rows.rows[0] ? String(column(rows.rows[0], "value")) : null;
  }

  /** Milliseconds until `n` more calls fit in the Page's window (0: now). */
  #room(pageId: string, n: number): number {
    const now = this.deps.clock.now();
    const recent = (this.#calls.get(pageId) ?? []).filter((t) => t > now - RATE_LIMIT.windowMs);
    this.#calls.set(pageId, recent);
    if (recent.length + n <= RATE_LIMIT.calls) return 0;
    return recent[recent.length + n - RATE_LIMIT.calls - 1]! + RATE_LIMIT.windowMs - now;
  }

  #count(pageId: string): void {
    this.#calls.get(pageId)!.push(this.deps.clock.now());
  }
}

/** JSON with sorted keys, for comparing what the Page has with what is declared. */
function canonical(value: unknown): string {
  if (value === undefined) return "undefined";
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
}
