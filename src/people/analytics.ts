/**
 * Analytics: counts per endpoint and UTC day — inputs, outputs, sessions, users and failed sends —
 * in `analytics_daily`, written in the same commit as the work they count. They hold no user
 * text, data or ids, so `mask_analytics` has nothing to mask in them (it is honoured by
 * construction). Off with `collect_analytics = false`.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import { columnList, rowReader } from "../db/rows.ts";
import { analyticsDaily } from "../db/schema.ts";

export interface Counts {
  inputs?: number;
  outputs?: number;
  sessions?: number;
  users?: number;
  failedSends?: number;
}

/** One endpoint's counts of one day, as the admin API and the metrics show them. */
export interface DayCounts {
  endpoint_id: string;
  day: string;
  inputs: number;
  outputs: number;
  sessions: number;
  users: number;
  failed_sends: number;
}

/** The UTC day of a time, `YYYY-MM-DD`. */
export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

const COUNT_SQL =
  "INSERT INTO analytics_daily (endpoint_id, day, inputs, outputs, sessions, users, failed_sends) VALUES (?, ?, ?, ?, ?, ?, ?) " +
  "ON CONFLICT (endpoint_id, day) DO UPDATE SET inputs = inputs + excluded.inputs, outputs = outputs + excluded.outputs, " +
  "sessions = sessions + excluded.sessions, users = users + excluded.users, failed_sends = failed_sends + excluded.failed_sends";

export function countStatement(endpointId: string, now: number, c: Counts): InStatement {
  return { sql: COUNT_SQL, args: [endpointId, dayOf(now), c.inputs ?? 0, c.outputs ?? 0, c.sessions ?? 0, c.users ?? 0, c.failedSends ?? 0] };
}

const DAY_KEYS = ["endpointId", "day", "inputs", "outputs", "sessions", "users", "failedSends"] as const;
const readDay = rowReader(analyticsDaily, DAY_KEYS);
const DAYS_SQL = `SELECT ${columnList(analyticsDaily, DAY_KEYS)} FROM analytics_daily WHERE day >= ? AND day <= ? ORDER BY day, endpoint_id`;
const ENDPOINT_DAYS_SQL = `SELECT ${columnList(analyticsDaily, DAY_KEYS)} FROM analytics_daily WHERE day >= ? AND day <= ? AND endpoint_id = ? ORDER BY day, endpoint_id`;

/** The counts as the admin API and the metrics (at each scrape) read them. */
export class Analytics {
  constructor(private readonly database: Database) {}

  /** The counts of the days from `fromDay` to `toDay` (included), of one endpoint or of all. */
  async days(endpointId: string | undefined, fromDay: string, toDay: string): Promise<DayCounts[]> {
    const result = await this.database.client.execute(
      endpointId ? { sql: ENDPOINT_DAYS_SQL, args: [fromDay, toDay, endpointId] } : { sql: DAYS_SQL, args: [fromDay, toDay] },
    );
    return result.rows.map((row) => {
      const r = readDay(row);
      return { endpoint_id: r.endpointId, day: r.day, inputs: r.inputs, outputs: r.outputs, sessions: r.sessions, users: r.users, failed_sends: r.failedSends };
    });
  }
}
