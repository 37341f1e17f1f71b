/**
 * Analytics: counts per endpoint and UTC day — inputs, outputs, sessions, users and failed sends —
 * in `analytics_daily`, and the tokens flows reported per endpoint, flow and day in
 * `analytics_tokens_daily`, written in the same commit as the work they count. They hold no user
 * text, data or ids, so `mask_analytics` has nothing to mask in them (it is honoured by
 * construction). Off with `collect_analytics = false`.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import { columnList, rowReader } from "../db/rows.ts";
import type { Clock } from "../core/clock.ts";
import type { Registry } from "../metrics/registry.ts";
import { analyticsDaily, analyticsTokensDaily } from "../db/schema.ts";

export interface Counts {
  inputs?: number;
  outputs?: number;
  sessions?: number;
  users?: number;
  failedSends?: number;
}

/** The tokens one flow's models reported. */
export interface FlowTokens {
  prompt_tokens: number;
  completion_tokens: number;
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
  /** The tokens reported that day, by flow name (empty when none were). */
  tokens: Record<string, FlowTokens>;
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

const TOKENS_SQL =
  "INSERT INTO analytics_tokens_daily (endpoint_id, flow, day, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?) " +
  "ON CONFLICT (endpoint_id, flow, day) DO UPDATE SET prompt_tokens = prompt_tokens + excluded.prompt_tokens, " +
  "completion_tokens = completion_tokens + excluded.completion_tokens";

/** Adds a turn's tokens to its flow's count of the day. */
export function tokensStatement(endpointId: string, flow: string, now: number, tokens: { prompt: number; completion: number }): InStatement {
  return { sql: TOKENS_SQL, args: [endpointId, flow, dayOf(now), tokens.prompt, tokens.completion] };
}

const DAY_KEYS = ["endpointId", "day", "inputs", "outputs", "sessions", "users", "failedSends"] as const;
const readDay = rowReader(analyticsDaily, DAY_KEYS);
const DAYS_SQL = `SELECT ${columnList(analyticsDaily, DAY_KEYS)} FROM analytics_daily WHERE day >= ? AND day <= ? ORDER BY day, endpoint_id`;
const ENDPOINT_DAYS_SQL = `SELECT ${columnList(analyticsDaily, DAY_KEYS)} FROM analytics_daily WHERE day >= ? AND day <= ? AND endpoint_id = ? ORDER BY day, endpoint_id`;
const TOKEN_KEYS = ["endpointId", "flow", "day", "promptTokens", "completionTokens"] as const;
const readTokens = rowReader(analyticsTokensDaily, TOKEN_KEYS);
const TOKEN_DAYS_SQL = `SELECT ${columnList(analyticsTokensDaily, TOKEN_KEYS)} FROM analytics_tokens_daily WHERE day >= ? AND day <= ? ORDER BY day, endpoint_id, flow`;
const ENDPOINT_TOKEN_DAYS_SQL = `SELECT ${columnList(analyticsTokensDaily, TOKEN_KEYS)} FROM analytics_tokens_daily WHERE day >= ? AND day <= ? AND endpoint_id = ? ORDER BY day, endpoint_id, flow`;

/** The counts as the admin API and the metrics (at each scrape) read them. */
export class Analytics {
  constructor(private readonly database: Database) {}

  /** The counts of the days from `fromDay` to `toDay` (included), of one endpoint or of all, each with its tokens by flow. */
  async days(endpointId: string | undefined, fromDay: string, toDay: string): Promise<DayCounts[]> {
    const range = endpointId ? [fromDay, toDay, endpointId] : [fromDay, toDay];
    const [counts, tokens] = await Promise.all([
      this.database.client.execute({ sql: endpointId ? ENDPOINT_DAYS_SQL : DAYS_SQL, args: range }),
      this.database.client.execute({ sql: endpointId ? ENDPOINT_TOKEN_DAYS_SQL : TOKEN_DAYS_SQL, args: range }),
    ]);
    const days = new Map<string, { counts: DayCounts; tokens: [string, FlowTokens][] }>();
    const entryOf = (endpoint: string, day: string) => {
      const key = `${day}\u0000${endpoint}`;
      let entry = days.get(key);
      if (!entry) {
        entry = { counts: { endpoint_id: endpoint, day, inputs: 0, outputs: 0, sessions: 0, users: 0, failed_sends: 0, tokens: {} }, tokens: [] };
        days.set(key, entry);
      }
      return entry;
    };
    for (const row of counts.rows) {
      const r = readDay(row);
      Object.assign(entryOf(r.endpointId, r.day).counts, {
        inputs: r.inputs,
        outputs: r.outputs,
        sessions: r.sessions,
        users: r.users,
        failed_sends: r.failedSends,
      });
    }
    for (const row of tokens.rows) {
      const r = readTokens(row);
      entryOf(r.endpointId, r.day).tokens.push([r.flow, { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens }]);
    }
    // Object.fromEntries: a flow may be named anything the settings allow, "__proto__" too.
    const result = [...days.values()].map(({ counts, tokens }) => ({ ...counts, tokens: Object.fromEntries(tokens) }));
    // By day, then endpoint, as the queries order them (a day with tokens and no counts comes from the second).
    return result.sort((a, b) => compare(a.day, b.day) || compare(a.endpoint_id, b.endpoint_id));
  }

  /** `messenger_analytics_today{endpoint, measure}`: today's counts (UTC), read at each scrape. */
  gaugeToday(metrics: Registry, clock: Clock): void {
    const today = metrics.gauge(
      "messenger_analytics_today",
      "Today's analytics counts (UTC) by endpoint and measure: inputs, outputs, sessions, users, failed_sends.",
    );
    metrics.onCollect(async () => {
      const day = dayOf(clock.now());
      for (const row of await this.days(undefined, day, day)) {
        for (const measure of ["inputs", "outputs", "sessions", "users", "failed_sends"] as const)
          today.set({ endpoint: row.endpoint_id, measure }, row[measure]);
      }
    });
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
