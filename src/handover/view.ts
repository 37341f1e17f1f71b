/** A user's thread as the admin API shows it (`GET /api/endpoints/{id}/users/{user}/thread`). */
import type { UserKey } from "../core/user-key.ts";
import type { Floor, ThreadState } from "./store.ts";

export interface ThreadView {
  endpoint_id: string;
  page_id: string;
  user_id: string;
  state: Floor;
  owner_app_id: string | null;
  metadata: string | null;
  since: string | null;
  last_human_at: string | null;
  paused_until: string | null;
  /** handover: when the thread is taken back if no person answers before. */
  timeout_at: string | null;
  last_error: string | null;
}

export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * The view of a thread whose floor is `floor` now, from its stored row (null: never handed over).
 * `timeoutAt` is exactly what the timer acts on (handover/deadlines.ts): null when nothing will
 * take the thread back by itself.
 */
export function threadView(key: UserKey, floor: Floor, stored: ThreadState | null, timeoutAt: number | null): ThreadView {
  return {
    endpoint_id: key.endpointId,
    page_id: key.pageId,
    user_id: key.userId,
    state: floor,
    owner_app_id: floor === "handover" ? (stored?.ownerAppId ?? null) : null,
    metadata: stored?.metadata ?? null,
    since: iso(stored?.since ?? null),
    last_human_at: iso(stored?.lastHumanAt ?? null),
    paused_until: floor === "paused" ? iso(stored?.pausedUntil ?? null) : null,
    timeout_at: floor === "handover" ? iso(timeoutAt) : null,
    last_error: stored?.lastError ?? null,
  };
}

/** Users not in state bot, per endpoint, from the threads held in memory. */
export function threadCounts(open: Iterable<{ key: UserKey; state: ThreadState }>): Map<string, { handover: number; paused: number }> {
  const counts = new Map<string, { handover: number; paused: number }>();
  for (const { key, state } of open) {
    const c = counts.get(key.endpointId) ?? { handover: 0, paused: 0 };
    if (state.state === "handover") c.handover++;
    else if (state.state === "paused") c.paused++;
    counts.set(key.endpointId, c);
  }
  return counts;
}
