/**
 * The tokens a flow reports in a turn (src/conversations/usage.ts): summed over the turn, counted
 * in `messenger_llm_tokens_total` at once, written by one statement that adds to the day's count
 * (people/analytics.ts), and read back per endpoint, flow and day by `Analytics.days`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TOKENS_HELP, TOKENS_METRIC, TokenCounts } from "../../../src/conversations/usage.ts";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { Analytics, countStatement } from "../../../src/people/analytics.ts";
import { collectingLogger } from "../../helpers/log.ts";
import { tempDir, type TempDir } from "../../helpers/tmp.ts";

const DAY_1 = Date.parse("2026-03-01T10:00:00Z");
const DAY_2 = Date.parse("2026-03-02T23:59:00Z");
let dir: TempDir;
let database: Database;
let writes: WriteQueue;

beforeAll(async () => {
  dir = tempDir("usage");
  database = await openDatabase(`file:${dir.join("u.db")}`);
  await applyMigrations(database);
  writes = new WriteQueue(database.client);
});
afterAll(() => {
  database.close();
  dir.remove();
});

describe("token usage of a turn", () => {
  test("two reports in a turn are summed, counted in the metric at once; the statement adds them to the day", async () => {
    const metrics = new Registry();
    const counts = new TokenCounts(metrics);
    const turn = counts.turn("support", "agent", collectingLogger().log);
    turn.report({ prompt: 120, completion: 30 });
    const counter = metrics.counter(TOKENS_METRIC, "");
    expect(counter.get({ endpoint: "support", flow: "agent", kind: "prompt" })).toBe(120);
    turn.report({ prompt: 200, completion: 45 });
    expect(turn.total).toEqual({ prompt: 320, completion: 75 });
    expect(counter.get({ endpoint: "support", flow: "agent", kind: "completion" })).toBe(75);
    expect(metrics.render()).toContain(`# HELP ${TOKENS_METRIC} ${TOKENS_HELP}`);

    await writes.run([turn.statement(DAY_1)!]);
    // A second turn the same day adds up; another flow and another day have rows of their own.
    const next = counts.turn("support", "agent", collectingLogger().log);
    next.report({ prompt: 10, completion: 5 });
    const other = counts.turn("support", "__proto__", collectingLogger().log);
    other.report({ prompt: 1, completion: 1 });
    const later = counts.turn("sales", "agent", collectingLogger().log);
    later.report({ prompt: 7, completion: 0 });
    await writes.run([next.statement(DAY_1)!, other.statement(DAY_1)!, later.statement(DAY_2)!, countStatement("support", DAY_1, { inputs: 3 })]);

    const days = await new Analytics(database).days(undefined, "2026-03-01", "2026-03-02");
    expect(days).toEqual([
      {
        endpoint_id: "support",
        day: "2026-03-01",
        inputs: 3,
        outputs: 0,
        sessions: 0,
        users: 0,
        failed_sends: 0,
        tokens: { agent: { prompt_tokens: 330, completion_tokens: 80 }, ["__proto__"]: { prompt_tokens: 1, completion_tokens: 1 } },
      },
      // Tokens without counts (not written by a turn, which writes both): the day is there, its counts 0.
      {
        endpoint_id: "sales",
        day: "2026-03-02",
        inputs: 0,
        outputs: 0,
        sessions: 0,
        users: 0,
        failed_sends: 0,
        tokens: { agent: { prompt_tokens: 7, completion_tokens: 0 } },
      },
    ]);
    expect(Object.getPrototypeOf(days[0]!.tokens)).toBe(Object.prototype); // "__proto__" is a flow like any other
    expect((await new Analytics(database).days("sales", "2026-03-01", "2026-03-02")).map((d) => d.endpoint_id)).toEqual(["sales"]);
  });

  test("a turn that reports nothing (or only zeros) writes nothing", () => {
    const turn = new TokenCounts(new Registry()).turn("support", "agent", collectingLogger().log);
    expect(turn.statement(DAY_1)).toBeNull();
    turn.report({ prompt: 0, completion: 0 });
    expect(turn.statement(DAY_1)).toBeNull();
  });

  test("a report that is not two non-negative numbers is not counted, and the log says how to call it", () => {
    const metrics = new Registry();
    const logs = collectingLogger();
    const turn = new TokenCounts(metrics).turn("support", "agent", logs.log);
    for (const wrong of [{ prompt: -1, completion: 2 }, { prompt: "12", completion: 2 }, { prompt: Number.NaN, completion: 1 }, null, { prompt: 3 }])
      turn.report(wrong as never);
    turn.report({ prompt: 12.6, completion: 2 });
    expect(turn.total).toEqual({ prompt: 13, completion: 2 });
    const warnings = logs.records().filter((r) => r.level === "warn");
    expect(warnings).toHaveLength(5);
    expect(warnings[0]!.msg).toContain("Call ctx.usage({ prompt: <prompt tokens>, completion: <completion tokens> })");
    expect(warnings[1]!.usage).toBe('{"prompt":"12","completion":2}');
  });
});
