/** Time and timers, passed in so tests can control them. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * Timers, passed in so that unit tests can move time forward instead of waiting for it
 * (test/helpers/manual-clock.ts). Components that wait (the reply lanes' delays and retries, the
 * handover timeouts, the storage probes) take their timers from here.
 */
export interface Timers {
  /** Calls `fn` once after `ms` milliseconds; returns the function that cancels it. */
  after(ms: number, fn: () => void): () => void;
}

/** setTimeout's longest delay (about 24.8 days); longer waits are chained. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const realTimers: Timers = {
  after(ms, fn) {
    let handle: Timer;
    const arm = (left: number) => {
      const delay = Math.max(0, Math.min(left, MAX_TIMEOUT_MS));
      handle = setTimeout(() => (delay < left ? arm(left - delay) : fn()), delay);
    };
    arm(ms);
    return () => clearTimeout(handle);
  },
};

/** Resolves after `ms` on these timers (true), or at once with false when `signal` is aborted meanwhile. */
export function sleep(timers: Timers, ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      cancel();
      resolve(false);
    };
    const cancel = timers.after(ms, () => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
