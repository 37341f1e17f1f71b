/**
 * Who a reply lane sends to. Users are PSIDs, sent to as `{ "id": psid }`; a person known only by
 * the `user_ref` of the checkbox (or chat) plugin is stored as `user_ref:<ref>`
 * (src/webhook/events.ts) and is sent to as `{ "user_ref": ref }`. Messenger takes one message for
 * a user_ref, and no sender action (typing_on, mark_seen) or thread control: those need the PSID,
 * which arrives with the person's first reply (and then is another user, with a lane of its own).
 */
import { USER_REF_PREFIX, isUserRef } from "../core/user-key.ts";
import type { OutboxItem } from "./outbox.ts";
import type { ReplyStore } from "./store.ts";

export type Recipient = { id: string } | { user_ref: string };

/** The Send API `recipient` for a lane's user. */
export function recipientOf(userId: string): Recipient {
  return isUserRef(userId) ? { user_ref: userId.slice(USER_REF_PREFIX.length) } : { id: userId };
}

/**
 * Why this item may not be sent to a user known only by a user_ref (to be dropped with that
 * reason), or null when it may: the first message only. One earlier message that was sent is
 * enough to refuse (or one Facebook took without a readable answer: unconfirmed); one that failed or was dropped does not count.
 */
export async function userRefRefusal(store: ReplyStore, item: OutboxItem): Promise<string | null> {
  if (item.kind === "action") return "a sender action cannot be sent to a person known only by a user_ref (it needs their PSID)";
  if (item.kind !== "message") return "the thread cannot be passed for a person known only by a user_ref (it needs their PSID)";
  return (await store.sentBefore(item))
    ? "only one message may be sent to a user_ref, and one was sent already; once the person answers, their events carry their PSID and the flow can write to them again"
    : null;
}
