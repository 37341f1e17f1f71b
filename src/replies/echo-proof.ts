/**
 * Whether echoes of our sends reach this endpoint for a Page: one came back lately. Only then does
 * a missing echo after an unclear answer mean that Graph did not take the message (failures.ts
 * `noEcho`). Remembered in `meta` across restarts (store.ts), at most once an hour per Page.
 */
import type { InStatement } from "@libsql/client";
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { ReplyStore } from "./store.ts";

/** How long an echo of ours counts as proof that this endpoint receives echoes. */
const ECHOES_PROVEN_MS = 7 * 24 * 3_600_000;
/** Remembered in `meta` at most this often per endpoint and Page. */
const ECHOES_RECORD_EVERY_MS = 3_600_000;

export class EchoProof {
  /** When an echo of ours last came back, per `<endpoint>:<page>`, and when that was last stored. */
  readonly #seen = new Map<string, { at: number; recorded: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly store: ReplyStore,
  ) {}

  /** Reads what earlier runs remembered. */
  async load(): Promise<void> {
    for (const [page, at] of await this.store.echoesSeen()) this.#seen.set(page, { at, recorded: at });
  }

  /**
   * An echo of ours came back for this endpoint and Page. Returns the statement that remembers it
   * across restarts, at most once an hour (else null), to commit with the echo.
   */
  ownEcho(endpointId: string, pageId: string): InStatement | null {
    const now = this.clock.now();
    const page = `${endpointId}:${pageId}`;
    const seen = this.#seen.get(page);
    const due = !seen || now - seen.recorded >= ECHOES_RECORD_EVERY_MS;
    this.#seen.set(page, { at: now, recorded: due ? now : seen.recorded });
    return due ? this.store.echoSeenStatement(page, now) : null;
  }

  /** Whether echoes of our sends are known to reach this endpoint for this user's Page (one came back within the last week). */
  arrive(key: UserKey): boolean {
    const seen = this.#seen.get(`${key.endpointId}:${key.pageId}`);
    return seen !== undefined && this.clock.now() - seen.at < ECHOES_PROVEN_MS;
  }
}
