/**
 * Failures a test scripts (`failNext`), taken first-in, first-out by the calls they match, and the
 * answers they hold back (a scripted timeout), which the caller giving up or `stop()` release.
 */
import { isObject } from "./params.ts";
import type { FailureOptions, ScriptedFailure } from "./types.ts";

/** A held answer, released by its timer, the client giving up, or `stop()`. */
interface Hold {
  timer: ReturnType<typeof setTimeout>;
  finish: (how: "elapsed" | "aborted" | "stopped") => void;
}

export class ScriptedFailures {
  #queue: { failure: ScriptedFailure; remaining: number; options: FailureOptions }[] = [];
  readonly #holds = new Set<Hold>();

  /** Queues a failure for the next matching call(s) of its edge (`messages` by default). */
  add(failure: ScriptedFailure, options: FailureOptions = {}): void {
    this.#queue.push({ failure, remaining: options.times ?? 1, options });
  }

  /** The first queued failure matching a call of `edge` for `pageId` with these parameters, used once; null when none. */
  take(pageId: string, params: Record<string, unknown>, edge = "messages"): ScriptedFailure | null {
    const recipient = isObject(params.recipient) ? params.recipient : {};
    const recipientId = recipient.id === undefined ? undefined : String(recipient.id);
    const index = this.#queue.findIndex(
      ({ options }) =>
        (options.edge ?? "messages") === edge &&
        (options.pageId === undefined || options.pageId === pageId) &&
        (options.recipientId === undefined || options.recipientId === recipientId) &&
        (options.when === undefined || options.when(params)),
    );
    if (index < 0) return null;
    const entry = this.#queue[index]!;
    if (--entry.remaining <= 0) this.#queue.splice(index, 1);
    return entry.failure;
  }

  /** Holds an answer for `ms`: "elapsed", or "aborted" when the caller gave up first, or "stopped" by `releaseAll`. */
  hold(ms: number, signal: AbortSignal): Promise<"elapsed" | "aborted" | "stopped"> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve("aborted");
      const onAbort = () => hold.finish("aborted");
      const hold: Hold = {
        timer: setTimeout(() => hold.finish("elapsed"), ms),
        finish: (how) => {
          clearTimeout(hold.timer);
          signal.removeEventListener("abort", onAbort);
          this.#holds.delete(hold);
          resolve(how);
        },
      };
      signal.addEventListener("abort", onAbort);
      this.#holds.add(hold);
    });
  }

  /** Releases every held answer (the fake stops). */
  releaseAll(): void {
    for (const hold of [...this.#holds]) hold.finish("stopped");
  }

  /** Queued failures are forgotten (held answers stay held). */
  reset(): void {
    this.#queue = [];
  }
}
