/**
 * Who a piece of work is about: one person on one Page of one endpoint. The same person on
 * another Page has another PSID, so this triple is the unit of ordering (one turn and one send at
 * a time), of sessions, of thread state and of erasure.
 */
export interface UserKey {
  endpointId: string;
  pageId: string;
  /** The PSID (or `user_ref:<ref>` for a person known only by a checkbox-plugin user_ref). */
  userId: string;
}

/** What a person known only by a `user_ref` is called in the inbox, the lanes and the sessions: `user_ref:<ref>`. */
export const USER_REF_PREFIX = "user_ref:";

/** One string per user: the key of every per-user map (work lists, caches, timers). */
export function userKeyId(key: UserKey): string {
  return `${key.endpointId}\u0000${key.pageId}\u0000${key.userId}`;
}

/** The key back from its `userKeyId`. */
export function userKeyFromId(id: string): UserKey {
  const [endpointId = "", pageId = "", userId = ""] = id.split("\u0000");
  return { endpointId, pageId, userId };
}

/** Just the three fields of a key (a larger object, a row, carries more). */
export function userKeyOf(value: UserKey): UserKey {
  return { endpointId: value.endpointId, pageId: value.pageId, userId: value.userId };
}

/** Whether the user is known only by a checkbox-plugin `user_ref` (no PSID yet). */
export function isUserRef(userId: string): boolean {
  return userId.startsWith(USER_REF_PREFIX);
}
