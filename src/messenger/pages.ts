/**
 * The Pages of all endpoints: their credentials for the Graph API, and whether sending is paused
 * because Meta rejected the token (error 190). A pause is stored, shown on /readyz and in the
 * logs, and lifted when the settings carry a different token: at the next start, or at once when
 * a settings reload brings one (`update`, called by config/live.ts's reload through app.ts).
 */
import { createHash } from "node:crypto";
import { and, eq } from "drizzle-orm";
import type { Config } from "../config/load.ts";
import type { Database } from "../db/client.ts";
import { pageState } from "../db/schema.ts";
import { statement } from "../db/statement.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import type { PageCredentials } from "./graph.ts";

export interface PausedPage {
  endpointId: string;
  pageId: string;
  reason: string;
  since: number;
}

const key = (endpointId: string, pageId: string) => `${endpointId}\u0000${pageId}`;

export function tokenFingerprint(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 16);
}

export class PageDirectory {
  readonly #credentials = new Map<string, PageCredentials>();
  readonly #paused = new Map<string, PausedPage>();
  readonly #resumeListeners: ((endpointId: string, pageId: string) => void)[] = [];

  constructor(
    config: Config,
    private readonly database: Database,
    private readonly writes: WriteQueue,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.#setCredentials(config);
  }

  #setCredentials(config: Pick<Config, "endpoints">): void {
    for (const endpoint of config.endpoints) {
      for (const page of endpoint.pages) {
        this.#credentials.set(key(endpoint.id, page.id), { pageId: page.id, accessToken: page.access_token, appSecret: endpoint.app_secret });
      }
    }
  }

  /**
   * New settings: their Pages' credentials replace the old ones (the next Graph call uses them), and
   * a paused Page whose token changed is resumed. Pages no longer in the settings keep their last
   * credentials, for the replies already queued for them.
   */
  async update(config: Pick<Config, "endpoints">): Promise<void> {
    const before = new Map(this.#credentials);
    this.#setCredentials(config);
    for (const p of this.paused()) {
      const now = this.credentials(p.endpointId, p.pageId);
      if (!now || now.accessToken === before.get(key(p.endpointId, p.pageId))?.accessToken) continue;
      this.log.info("Page resumed: its access token was replaced", { endpoint: p.endpointId, page: p.pageId });
      await this.resume(p.endpointId, p.pageId);
    }
  }

  credentials(endpointId: string, pageId: string): PageCredentials | undefined {
    return this.#credentials.get(key(endpointId, pageId));
  }

  /** The credentials to call Graph with for this Page, unless it is paused (its token was refused). */
  activeCredentials(endpointId: string, pageId: string): PageCredentials | undefined {
    return this.isPaused(endpointId, pageId) ? undefined : this.credentials(endpointId, pageId);
  }

  /** Reads stored pauses; a Page whose token has changed in the settings since is resumed. */
  async load(): Promise<void> {
    const rows = await this.database.db.select().from(pageState);
    for (const row of rows) {
      if (row.pausedAt === null) continue;
      const credentials = this.credentials(row.endpointId, row.pageId);
      if (!credentials) continue; // the Page is no longer served
      if (row.tokenFingerprint !== tokenFingerprint(credentials.accessToken)) {
        this.log.info("Page resumed: its access token was replaced", { endpoint: row.endpointId, page: row.pageId });
        await this.resume(row.endpointId, row.pageId);
        continue;
      }
      this.#paused.set(key(row.endpointId, row.pageId), {
        endpointId: row.endpointId,
        pageId: row.pageId,
        reason: row.pausedReason ?? "paused",
        since: row.pausedAt,
      });
      this.#logPaused(row.endpointId, row.pageId, row.pausedReason ?? "paused");
    }
  }

  isPaused(endpointId: string, pageId: string): boolean {
    return this.#paused.has(key(endpointId, pageId));
  }

  paused(): PausedPage[] {
    return [...this.#paused.values()];
  }

  async pause(endpointId: string, pageId: string, reason: string): Promise<void> {
    if (this.isPaused(endpointId, pageId)) return;
    const now = this.clock.now();
    const credentials = this.credentials(endpointId, pageId);
    const fingerprint = credentials ? tokenFingerprint(credentials.accessToken) : null;
    this.#paused.set(key(endpointId, pageId), { endpointId, pageId, reason, since: now });
    this.#logPaused(endpointId, pageId, reason);
    await this.writes.run([
      statement(
        this.database.db
          .insert(pageState)
          .values({ endpointId, pageId, pausedAt: now, pausedReason: reason, tokenFingerprint: fingerprint, updatedAt: now })
          .onConflictDoUpdate({
            target: [pageState.endpointId, pageState.pageId],
            set: { pausedAt: now, pausedReason: reason, tokenFingerprint: fingerprint, updatedAt: now },
          }),
      ),
    ]);
  }

  async resume(endpointId: string, pageId: string): Promise<void> {
    this.#paused.delete(key(endpointId, pageId));
    await this.writes.run([
      statement(
        this.database.db
          .update(pageState)
          .set({ pausedAt: null, pausedReason: null, tokenFingerprint: null, updatedAt: this.clock.now() })
          .where(and(eq(pageState.endpointId, endpointId), eq(pageState.pageId, pageId))),
      ),
    ]);
    for (const listener of this.#resumeListeners) listener(endpointId, pageId);
  }

  onResume(listener: (endpointId: string, pageId: string) => void): void {
    this.#resumeListeners.push(listener);
  }

  #logPaused(endpointId: string, pageId: string, reason: string): void {
    this.log.error(
      `sending to Page ${pageId} is paused: ${reason}. Replace pages[].access_token of endpoint ${endpointId} with a valid Page token and reload the settings (SIGHUP or POST /api/reload); queued messages are kept`,
      { endpoint: endpointId, page: pageId },
    );
  }
}
