/**
 * Whether the database takes writes. When a commit fails for a reason of the storage itself (the
 * disk is full, an I/O error, a read-only file, a lock held too long, a libSQL server that cannot
 * be reached), doing the work again at once cannot help and would cost: a turn whose outcome could
 * not be stored would call the agent again, a send whose "sent" mark could not be stored would
 * reach the user twice. So a storage failure **pauses processing** — every inbound and reply lane
 * waits in `waitHealthy()` — and a probe write is tried with growing delays (0.5 s, 1 s, 2 s …
 * 30 s). Only the probe resumes processing: other writes may get through meanwhile (a webhook's
 * small insert on a nearly full disk) while a turn's larger commit still fails, and letting each of
 * them resume the lanes would retry those commits as fast as webhooks arrive. The backoff's step
 * goes back to the start only after a minute without failures.
 *
 * It logs at a bounded rate: one error line when writes start failing, at most one line a minute
 * while they keep failing, one line when they work again. `/readyz` shows `problem()`.
 */
import type { Clock, Timers } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";

/** SQLite result codes that say the storage failed, not the statement (constraint, SQL error). */
const STORAGE_CODES = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY|LOCKED|NOMEM|CORRUPT|NOTADB|PROTOCOL|NOLFS)/;

/**
 * A remote libSQL server that cannot be reached, failed, or answered nonsense (its client's codes,
 * fetch's, and remote.ts's for a server that did not answer in time or not in JSON).
 */
const TRANSPORT_CODES =
  /^(SERVER_ERROR|HRANA_WEBSOCKET_ERROR|HRANA_CLOSED_ERROR|HRANA_PROTO_ERROR|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|ENETUNREACH|EHOSTUNREACH|EPIPE)$/;

/**
 * True for errors of the storage rather than of the statement: the same statements may well
 * commit later. A constraint or SQL error, or a closed client at shutdown, is not one.
 */
export function isStorageError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && (STORAGE_CODES.test(code) || TRANSPORT_CODES.test(code));
}

export interface StorageHealthOptions {
  clock: Clock;
  /** For the probes' delays. */
  timers: Timers;
  log: Logger;
  /** A small durable write; resolving means the storage takes writes again. */
  probe: () => Promise<unknown>;
  /** What the operator should do, shown in the log and on /readyz (names the database). */
  advice: string;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** At most one "still failing" line per this many ms. */
  logEveryMs?: number;
  /** The backoff starts over after this long without a failure. */
  quietMs?: number;
}

export class StorageHealth {
  readonly #options: Required<Omit<StorageHealthOptions, "probe" | "advice" | "clock" | "timers" | "log">> & StorageHealthOptions;
  #failingSince: number | null = null;
  #lastFailure = 0;
  #lastError = "";
  #failures = 0;
  /** The backoff's step; back to 0 only after a minute without failures (see above). */
  #step = 0;
  #lastLog = Number.NEGATIVE_INFINITY;
  /** The start of this failure was logged: its end is too. */
  #announced = false;
  /** Cancels the next probe, when one is armed. */
  #cancelProbe: (() => void) | null = null;
  #waiters: ((healthy: boolean) => void)[] = [];
  /** Errors counted already: the write queue and the caller that gets the error both report it. */
  readonly #counted = new WeakSet<object>();
  #stopped = false;

  constructor(options: StorageHealthOptions) {
    this.#options = { minDelayMs: 500, maxDelayMs: 30_000, logEveryMs: 60_000, quietMs: 60_000, ...options };
  }

  get healthy(): boolean {
    return this.#failingSince === null;
  }

  /** For /readyz: null when writes work, else what is wrong and what to do. */
  problem(): string | null {
    if (this.#failingSince === null) return null;
    return `writes to the database fail since ${new Date(this.#failingSince).toISOString()} (${this.#lastError}): ${this.#options.advice}; processing is paused and resumes by itself once a write succeeds`;
  }

  /** Failed writes since the last start or recovery (the probes' among them): tests wait on it instead of on time. */
  get failedWrites(): number {
    return this.#failures;
  }

  /** When writes last failed (0: never): whatever was to happen since then may not have been stored. */
  get lastFailureAt(): number {
    return this.#lastFailure;
  }

  /** A commit failed. Returns whether it was a storage failure (and processing is now paused). */
  failed(error: unknown): boolean {
    if (!isStorageError(error)) return false;
    if (typeof error === "object" && error !== null) {
      if (this.#counted.has(error)) return true;
      this.#counted.add(error);
    }
    const now = this.#options.clock.now();
    if (now - this.#lastFailure >= this.#options.quietMs) this.#step = 0;
    this.#lastFailure = now;
    this.#failures++;
    this.#lastError = describe(error);
    const starting = this.#failingSince === null;
    if (starting) this.#failingSince = now;
    if (now - this.#lastLog >= this.#options.logEveryMs) {
      this.#lastLog = now;
      if (starting) {
        this.#announced = true;
        this.#options.log.error(
          `writes to the database fail (${this.#lastError}): ${this.#options.advice}. Processing is paused — no agent is called and nothing is sent — and resumes by itself once a write succeeds; webhooks that cannot be stored are answered 503, so Facebook sends them again`,
        );
      } else {
        this.#options.log.warn(
          `writes to the database still fail (${this.#failures} failures in ${Math.round((now - this.#failingSince!) / 1000)} s, ${this.#lastError}): ${this.#options.advice}`,
        );
      }
    }
    this.#schedule();
    return true;
  }

  /** The probe committed: if processing was paused, it resumes. */
  succeeded(): void {
    if (this.#failingSince === null) return;
    const now = this.#options.clock.now();
    if (this.#announced) {
      this.#announced = false;
      this.#options.log.info(
        `writes to the database work again after ${Math.round((now - this.#failingSince) / 1000)} s (${this.#failures} failed writes); processing resumes`,
      );
    }
    this.#failingSince = null;
    this.#failures = 0;
    this.#cancelProbe?.();
    this.#cancelProbe = null;
    for (const resolve of this.#waiters.splice(0)) resolve(true);
  }

  /** Resolves true at once when writes work, else when they work again; false when stopping. */
  waitHealthy(): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    if (this.#failingSince === null) return Promise.resolve(true);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Tries a write now (at start: a full disk must not let the lanes run an agent first). */
  async check(): Promise<boolean> {
    try {
      await this.#options.probe();
      this.succeeded();
      return true;
    } catch (error) {
      this.failed(error);
      return false;
    }
  }

  /** Ends the probes; whoever waits is told false (the server is stopping). */
  stop(): void {
    this.#stopped = true;
    this.#cancelProbe?.();
    this.#cancelProbe = null;
    for (const resolve of this.#waiters.splice(0)) resolve(false);
  }

  /** The next probe, unless one is due already. */
  #schedule(): void {
    if (this.#stopped || this.#cancelProbe) return;
    const delay = Math.min(this.#options.maxDelayMs, this.#options.minDelayMs * 2 ** this.#step++);
    this.#cancelProbe = this.#options.timers.after(delay, () => {
      this.#cancelProbe = null;
      if (this.#failingSince === null || this.#stopped) return;
      // The probe goes through the write queue, which reports its outcome here (failed() then
      // schedules the next one); a failure of another kind is only logged, and probed again.
      void this.#options.probe().then(
        () => this.succeeded(),
        (error) => {
          if (isStorageError(error)) return;
          this.#options.log.error("the database probe failed", { error });
          this.#schedule();
        },
      );
    });
  }
}

function describe(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown };
  const message = typeof e?.message === "string" ? e.message.split("\n")[0]!.slice(0, 200) : String(error);
  return typeof e?.code === "string" && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}
