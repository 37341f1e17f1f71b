/**
 * Where the time of a turn goes (docs/operations.md "Metrics", docs/benchmarks.md): each step
 * from the webhook's arrival to the Graph API's answer to the turn's first message, as the
 * histogram `messenger_turn_stage_seconds{stage}` (the time since the step before), and the whole
 * as `messenger_turn_end_to_end_seconds`. The steps, in order:
 *
 *   verified        request start → body read and signature checked (per POST)
 *   stored          → the inbox rows committed (per POST); the engine has the events from here
 *   fsynced         → the commit durable: the 200 may go (per POST; the turn runs meanwhile)
 *   turn_started    → (from stored) the conversation engine starts the event's turn
 *   flow_answered   → the flow returned its result
 *   outputs_stored  → the turn committed (outputs queued, event done)
 *   send_started    → the first message's Send API call starts (typing and delay included)
 *   graph_answered  → the Graph API answered it
 *
 * An event is followed by its inbox id, in a bounded map (events that never reach a send, such as
 * deliveries, fall out of it), and only its first message counts. The event loop's delay is
 * `messenger_event_loop_delay_seconds{quantile}` (event-loop.ts).
 */
import type { Histogram, Registry } from "./registry.ts";

export const TURN_STAGES = ["turn_started", "flow_answered", "outputs_stored", "send_started", "graph_answered"] as const;
export type TurnStage = (typeof TURN_STAGES)[number];

/** Finer than the registry's default at the low end, where a turn's steps are. */
const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const CAPACITY = 4096;

interface Followed {
  start: number;
  last: number;
  /** The index in TURN_STAGES of the last stage seen, -1 before the first. */
  stage: number;
}

/** A POST's steps before its events have inbox ids. */
export interface RequestTiming {
  readonly start: number;
  verified(): void;
  /** The inbox rows are committed; their events' turns are followed from now on. */
  stored(inboxIds: readonly number[]): void;
  /** The commit is durable. */
  fsynced(): void;
}

export class TurnTimings {
  readonly #stages: Histogram;
  readonly #total: Histogram;
  readonly #followed = new Map<number, Followed>();

  constructor(
    metrics: Registry,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#stages = metrics.histogram(
      "messenger_turn_stage_seconds",
      "Each step of a turn, from the webhook's arrival to the Graph API's answer to its first message: the time since the step before (verified, stored, fsynced, turn_started, flow_answered, outputs_stored, send_started, graph_answered).",
      BUCKETS,
    );
    this.#total = metrics.histogram(
      "messenger_turn_end_to_end_seconds",
      "From the webhook's arrival to the Graph API's answer to the turn's first message.",
      BUCKETS,
    );
  }

  /** A POST arrived now (or at `start`, from performance.now()). */
  request(start = this.now()): RequestTiming {
    let last = start;
    const step = (stage: string) => {
      const at = this.now();
      this.#stages.observe({ stage }, (at - last) / 1000);
      last = at;
    };
    return {
      start,
      verified: () => step("verified"),
      fsynced: () => step("fsynced"),
      stored: (inboxIds) => {
        step("stored");
        for (const id of inboxIds) {
          if (this.#followed.size >= CAPACITY) this.#followed.delete(this.#followed.keys().next().value!);
          this.#followed.set(id, { start, last, stage: -1 });
        }
      },
    };
  }

  /** The event `inboxId` reached `stage` (later calls for an earlier or the same stage count nothing). */
  mark(inboxId: number, stage: TurnStage): void {
    const f = this.#followed.get(inboxId);
    if (!f) return;
    const index = TURN_STAGES.indexOf(stage);
    if (index <= f.stage) return;
    const at = this.now();
    this.#stages.observe({ stage }, (at - f.last) / 1000);
    f.last = at;
    f.stage = index;
    if (stage === "graph_answered") {
      this.#total.observe({}, (at - f.start) / 1000);
      this.#followed.delete(inboxId);
    }
  }

  /** The event's turn ended without a message: no longer followed. */
  forget(inboxId: number): void {
    this.#followed.delete(inboxId);
  }
}
