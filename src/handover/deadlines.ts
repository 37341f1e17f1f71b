/**
 * The deadlines of the threads the bot does not have, one timer per user: when a pause's quiet
 * time ends, and when a handed-over thread is taken back (the timeout, or a failed take tried
 * again). The timer only says "look now": what is due is decided again from the state of that
 * moment, so a timer armed for an older state does no harm.
 */
import type { Clock, Timers } from "../core/clock.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import type { ThreadState } from "./store.ts";

/**
 * When the bot takes a handed-over thread back by itself: a take to try again, else the timeout
 * after the handover or the person's last reply. Never after a refused take (the error is on
 * the row; the thread waits for the other app, "Done" in the Page Inbox, or the operator), nor
 * for a thread whose owner we do not know, nor with `timeout_minutes` = 0.
 */
export function takeBackAt(state: ThreadState, timeoutMinutes: number): number | null {
  if (state.retryAt !== null) return state.retryAt;
  if (state.lastError !== null || state.ownerAppId === null) return null;
  if (timeoutMinutes <= 0) return null;
  return Math.max(state.since, state.lastHumanAt ?? 0) + timeoutMinutes * 60_000;
}

export interface DeadlineActions {
  /** The user's state now (null: the bot has the floor). */
  current(key: UserKey): ThreadState | null;
  /** A pause's quiet time is over. */
  pauseOver(key: UserKey): void;
  /** A handed-over thread is due to be taken back. */
  takeDue(key: UserKey): void;
}

export class ThreadDeadlines {
  readonly #cancels = new Map<string, () => void>();
  #stopped = false;

  constructor(
    private readonly deps: { clock: Clock; timers: Timers; timeoutMinutes: (endpointId: string) => number },
    private readonly actions: DeadlineActions,
  ) {}

  /** When this thread is taken back by itself, or null (see takeBackAt). */
  takeAt(key: UserKey, state: ThreadState): number | null {
    return takeBackAt(state, this.deps.timeoutMinutes(key.endpointId));
  }

  /** (Re)arms the user's one timer for the state's deadline, if it has one. A deadline already past fires at once. */
  arm(key: UserKey, state: ThreadState): void {
    this.cancel(key);
    if (this.#stopped) return;
    const now = this.deps.clock.now();
    if (state.state === "paused" && state.pausedUntil !== null) {
      this.#schedule(key, state.pausedUntil - now, () => {
        const open = this.actions.current(key);
        if (open?.state === "paused" && (open.pausedUntil ?? 0) <= this.deps.clock.now()) this.actions.pauseOver(key);
        else if (open) this.arm(key, open);
      });
    } else if (state.state === "handover") {
      const at = this.takeAt(key, state);
      if (at === null) return;
      this.#schedule(key, at - now, () => {
        const open = this.actions.current(key);
        if (open?.state !== "handover") return;
        const due = this.takeAt(key, open);
        if (due !== null && due <= this.deps.clock.now()) this.actions.takeDue(key);
        else this.arm(key, open);
      });
    }
  }

  /** The user's timer is off (the bot has the thread, or the user was erased). */
  cancel(key: UserKey): void {
    const id = userKeyId(key);
    this.#cancels.get(id)?.();
    this.#cancels.delete(id);
  }

  /** No timer fires any more, and none is armed. */
  stop(): void {
    this.#stopped = true;
    for (const cancel of this.#cancels.values()) cancel();
    this.#cancels.clear();
  }

  #schedule(key: UserKey, ms: number, run: () => void): void {
    const id = userKeyId(key);
    const cancel = this.deps.timers.after(Math.max(0, ms), () => {
      this.#cancels.delete(id);
      if (!this.#stopped) run();
    });
    this.#cancels.set(id, cancel);
  }
}
