/** A task run every `everyMs` on the given timers, never overlapping itself (the next wait starts when a run ends). */
import type { Timers } from "../core/clock.ts";

export interface Repeating {
  /** No more runs; resolves when the one under way (if any) has ended. */
  stop(): Promise<void>;
}

export function repeat(timers: Timers, everyMs: number, task: () => Promise<void>): Repeating {
  let stopped = false;
  let cancel: () => void = () => {};
  let running: Promise<void> | null = null;
  const next = () => {
    cancel = timers.after(everyMs, () => {
      running = task().finally(() => {
        running = null;
        if (!stopped) next();
      });
    });
  };
  next();
  return {
    async stop() {
      stopped = true;
      cancel();
      await running;
    },
  };
}
