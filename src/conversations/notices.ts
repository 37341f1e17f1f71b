/**
 * Scale-out: notices from the instance that changed something about a person to the instance that
 * runs them (docs/scale-out.md). The admin API answers on any instance, but only the owner holds
 * the person in memory: their session, contact, pending work, thread state. A notice is an inbox
 * row holding nothing but the key, of kind
 *
 *   erased          the person was erased (written in the erasure's own commit, by the part below)
 *   thread_changed  an operator took, passed, paused or resumed their thread
 *
 * The owner finds it like any row another instance stored (engine.ts `pickUp`), acts on it and
 * marks it done; the retention purges it with the other done rows.
 */
import type { InStatement } from "@libsql/client";
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { UserDataPart } from "../people/user-data.ts";

export type NoticeKind = "erased" | "thread_changed";

const NOTICE_SQL =
  "INSERT INTO inbox (endpoint_id, page_id, user_id, kind, dedup_key, timestamp, received_at, event, status) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', 'pending')";

export function noticeStatement(kind: NoticeKind, key: UserKey, clock: Clock): InStatement {
  const now = clock.now();
  return { sql: NOTICE_SQL, args: [key.endpointId, key.pageId, key.userId, kind, `${kind}:${now}:${crypto.randomUUID()}`, now, now] };
}

/** The user-data part that tells the owner of an erasure (registered last, after the inbox's deletes). */
export function erasureNotices(clock: Clock): UserDataPart {
  return {
    name: "cluster_erasure_notice",
    counted: false,
    erase: (subject) => subject.keys.map((key) => noticeStatement("erased", key, clock)),
  };
}
