/**
 * The typing indicator kept on while a flow works (docs/reply-lanes.md): when the flow has not
 * answered TYPING_AFTER_MS after it started, a `typing_on` goes to the user, renewed every
 * TYPING_RENEW_MS (Messenger lets the indicator lapse after about 20 s) until the flow answers,
 * fails, times out or the server stops. A flow that answers sooner costs a timer and nothing else.
 *
 * Each `typing_on` is an item of the user's reply lane (source "typing"), like the turn's
 * `mark_seen` (turn.ts), so it keeps its place among what is sent to the user. The turn stops the
 * keeper and waits for a `typing_on` still being queued before it commits its replies: they come
 * after it in the lane, and the first message clears the indicator. A turn that queues no message
 * after a `typing_on` queues a `typing_off` first (`closing`), so the indicator does not stay up
 * for nothing. Only with `typing_indicators`, and not for a person known only by a user_ref
 * (Messenger takes no sender action for them, replies/recipient.ts).
 */
import type { EndpointSettings } from "../config/schema.ts";
import type { Clock, Timers } from "../core/clock.ts";
import { isUserRef, type UserKey } from "../core/user-key.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Threads } from "../handover/threads.ts";
import type { Logger } from "../log/logger.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import { enqueueReplies, type NewReply } from "../replies/outbox.ts";

/** How long a flow may take before the user sees the typing indicator. */
export const TYPING_AFTER_MS = 1_000;
/** How often it is sent again while the flow works (Messenger's lapses after about 20 s). */
export const TYPING_RENEW_MS = 15_000;

/** Where the keeper's `typing_on` goes: the user's reply lane (`laneTyping`), or a test's stand-in. */
export interface TypingLane {
  /** Queues a `typing_on` for the user; resolves with its id once it is in the lane. */
  queue(key: UserKey, inboxId: number): Promise<number>;
  /** Whether that item still waits in the lane (not sent yet). */
  isOpen(key: UserKey, outboxId: number): boolean;
  /** Whether the lane holds the user's items (another app or a person has the thread). */
  holds(key: UserKey): boolean;
}

/** The typing indicator of one turn. */
export interface TurnTyping {
  /** No more renewals; resolves once a `typing_on` being queued is in the lane (never rejects). */
  stop(): Promise<void>;
  /** The replies to queue: with a `typing_off` first when a `typing_on` was queued and no message follows. */
  closing(replies: NewReply[]): NewReply[];
}

const NO_TYPING: TurnTyping = { stop: () => Promise.resolve(), closing: (replies) => replies };

export class TypingKeeper {
  constructor(private readonly deps: { timers: Timers; lane: TypingLane }) {}

  /** Starts the keeper for a turn's flow (a no-op when the endpoint or the user takes no typing indicator). */
  keep(key: UserKey, endpoint: EndpointSettings, inboxId: number, log: Logger): TurnTyping {
    if (!endpoint.messenger.typing_indicators || isUserRef(key.userId)) return NO_TYPING;
    const { timers, lane } = this.deps;
    let stopped = false;
    let queuing: Promise<void> | null = null;
    let last: number | null = null;
    let cancel = timers.after(TYPING_AFTER_MS, tick);

    function tick(): void {
      if (stopped) return;
      cancel = timers.after(TYPING_RENEW_MS, tick);
      // Not while the last one is being stored or still waits in the lane (a lane held by a
      // handover, a paused Page, a retry): one in the lane is enough.
      if (queuing || (last !== null && lane.isOpen(key, last)) || lane.holds(key)) return;
      queuing = lane
        .queue(key, inboxId)
        .then(
          (id) => {
            last = id;
          },
          (error) => log.debug("a typing indicator could not be queued; the flow goes on without it", { error }),
        )
        .finally(() => {
          queuing = null;
        });
    }

    return {
      async stop() {
        stopped = true;
        cancel();
        await queuing;
      },
      closing(replies) {
        if (last === null || replies.some((r) => r.message)) return replies;
        return [{ ...key, source: "typing", senderAction: "typing_off", inboxId }, ...replies];
      },
    };
  }
}

/** The keeper's lane: a `typing_on` stored (non-durable, like mark_seen) and handed to the user's reply lane. */
export function laneTyping(deps: { writes: WriteQueue; replies: ReplyLanes; clock: Clock; threads?: Threads | undefined }): TypingLane {
  return {
    async queue(key, inboxId) {
      const typing = enqueueReplies([{ ...key, source: "typing", senderAction: "typing_on", inboxId }], deps.clock.now())!;
      const [result] = await deps.writes.run([typing.statement], { durable: false });
      const items = typing.items(result!);
      deps.replies.accept(items);
      return items[0]!.id;
    },
    isOpen: (key, outboxId) => deps.replies.isOpen(key, outboxId),
    holds: (key) => deps.threads?.holds(key) ?? false,
  };
}
