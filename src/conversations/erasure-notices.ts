/**
 * Scale-out: an erasure run by one instance (the admin API answers on any) must reach the instance
 * that runs the person, whose memory holds their session, contact and pending work. With the
 * erasure's deletes, in the same commit, this part stores one inbox row of kind `erased` per
 * PSID, holding nothing but the key; the owner finds it like any row another instance stored
 * (conversations/engine.ts `pickUp`), forgets the person and marks the row done (the retention
 * purges it with the other done rows).
 */
import type { Clock } from "../core/clock.ts";
import type { UserDataPart } from "../people/user-data.ts";

const NOTICE_SQL =
  "INSERT INTO inbox (endpoint_id, page_id, user_id, kind, dedup_key, timestamp, received_at, event, status) VALUES (?, ?, ?, 'erased', ?, ?, ?, '{}', 'pending')";

/** The user-data part that tells the other instances (registered last, after the inbox's deletes). */
export function erasureNotices(clock: Clock): UserDataPart {
  return {
    name: "cluster_erasure_notice",
    counted: false,
    erase(subject) {
      const now = clock.now();
      return subject.keys.map((key) => ({
        sql: NOTICE_SQL,
        args: [key.endpointId, key.pageId, key.userId, `erased:${now}:${crypto.randomUUID()}`, now, now],
      }));
    },
  };
}
