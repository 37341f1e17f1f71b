/**
 * Analytics (SPEC §8): counts per endpoint and UTC day — inputs, outputs, sessions, users and
 * failed sends — in `analytics_daily`, written in the same commit as the work they count. They
 * hold no user text, data or ids, so `mask_analytics` has nothing to mask in them (it is honoured
 * by construction). Off with `collect_analytics = false`.
 */
import type { InStatement } from "@libsql/client";

export interface Counts {
  inputs?: number;
  outputs?: number;
  sessions?: number;
  users?: number;
  failedSends?: number;
}

/** The UTC day of a time, `YYYY-MM-DD`. */
export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function countStatement(endpointId: string, now: number, c: Counts): InStatement {
  return {
    sql:
      "INSERT INTO analytics_daily (endpoint_id, day, inputs, outputs, sessions, users, failed_sends) VALUES (?, ?, ?, ?, ?, ?, ?) " +
      "ON CONFLICT (endpoint_id, day) DO UPDATE SET inputs = inputs + excluded.inputs, outputs = outputs + excluded.outputs, " +
      "sessions = sessions + excluded.sessions, users = users + excluded.users, failed_sends = failed_sends + excluded.failed_sends",
    args: [endpointId, dayOf(now), c.inputs ?? 0, c.outputs ?? 0, c.sessions ?? 0, c.users ?? 0, c.failedSends ?? 0],
  };
}
