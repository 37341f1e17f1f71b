/**
 * `kind = "script"` (src/nlu/script.ts): getNluResult in the transformers' worker pool, with the
 * time limit `timeout_ms`, its return checked; a module without the function stops the start.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { realTimers } from "../../../src/core/clock.ts";
import type { NluResult } from "../../../src/nlu/result.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { nluSetup, scratchDatabase, textInput, type NluSetup } from "./support.ts";

const dir = tempDir("nlu-script");
let db: Awaited<ReturnType<typeof scratchDatabase>>;
const setups: NluSetup[] = [];
beforeAll(async () => {
  db = await scratchDatabase(dir.path);
});
afterEach(async () => {
  for (const s of setups.splice(0)) await s.stop();
});
afterAll(async () => {
  await db.close();
  dir.remove();
});

let files = 0;
async function script(code: string, lines = "retries = 0") {
  const module = dir.write(`nlu-${++files}.ts`, code);
  const s = await nluSetup(`kind = "script"\nmodule = "${module}"\n${lines}`, {
    dir: dir.path,
    // The worker's own time limit is real; so is the pause before a further try here.
    timers: realTimers,
    deps: { database: db.database, writes: db.writes, poolSize: 1 },
  });
  setups.push(s);
  return s;
}

const RULES = `
export function getNluResult({ text, data, language }) {
  const order = /\\b(\\d{5,})\\b/.exec(text);
  if (/order/i.test(text))
    return { intent: "order_status", score: 0.9, entities: order ? [{ type: "order_id", value: order[1], start: order.index, end: order.index + order[1].length }] : [], seen: { data, language } };
  return null;
}`;

describe('kind = "script"', () => {
  test("getNluResult({ text, data, language }) runs in a worker; its return is the result, raw the whole return", async () => {
    const s = await script(RULES);
    const input = textInput("my order 123456", { data: { request: { message: { mid: "m_1" } }, source_hint: "ad" } });
    expect(await s.run(input)).toBe(true);
    const nlu = input.nlu as NluResult;
    expect(nlu).toMatchObject({ intent: "order_status", score: 0.9, entities: [{ type: "order_id", value: "123456", start: 9, end: 15 }] });
    // The raw Messenger event stays out of what the script is given.
    expect((nlu.raw as { seen: unknown }).seen).toEqual({ data: { source_hint: "ad" }, language: "en" });
    expect(s.requests("ok")).toBe(1);
  });

  test("a falsy return: nothing understood", async () => {
    const s = await script(RULES);
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu).toEqual({ intent: null, score: 0, entities: [], raw: null });
  });

  test("Cognigy's createNluCodeTransformer({ getNluResult }) registers it too", async () => {
    const s = await script(`createNluCodeTransformer({ getNluResult: async ({ text }) => ({ intent: text.length > 3 ? "long" : "short", score: 0.5 }) });`);
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu).toMatchObject({ intent: "long", score: 0.5 });
  });

  test("a throw is a failed call (not tried again)", async () => {
    const s = await script(`export function getNluResult() { throw new Error("model file missing"); }`, "retries = 2");
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu).toBeNull();
    expect(input.nlu_error).toBe("getNluResult threw: model file missing");
    expect(s.requests("script_error")).toBe(1);
  });

  test("an invalid return is a failed call", async () => {
    const s = await script(`export function getNluResult() { return { intent: 42 }; }`);
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu_error).toStartWith(`getNluResult of ${dir.path}/nlu-`);
    expect(input.nlu_error).toEndWith("returned an invalid result: /intent: Expected string");
    expect(s.requests("invalid_answer")).toBe(1);
  });

  test("a script past timeout_ms is stopped: a timeout, tried again with a fresh worker", async () => {
    const s = await script(
      `export function getNluResult() { if (globalThis.__slow !== false) { globalThis.__slow = false; while (true) {} } return { intent: "late" }; }`,
      "timeout_ms = 300\nretries = 1",
    );
    const input = textInput("hello");
    // The second try runs on the replacement worker, where the module starts afresh: it loops again.
    await s.run(input);
    expect(input.nlu).toBeNull();
    expect(input.nlu_error).toBe("getNluResult did not finish within 300 ms and was stopped (2 tries)");
    expect(s.requests("timeout")).toBe(1);
    expect(s.metrics.counter("messenger_nlu_retries_total", "").get({ endpoint: "support" })).toBe(1);
  });

  test("a run limited to 100 ms still gets seconds to load the module", async () => {
    const s = await script(
      `const until = Date.now() + 300; while (Date.now() < until) {}\nexport function getNluResult() { return { intent: "loaded" }; }`,
      "timeout_ms = 100",
    );
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu).toMatchObject({ intent: "loaded" });
  });

  test("a module without getNluResult stops the start", async () => {
    const module = dir.write("no-fn.ts", "export function somethingElse() {}");
    await expect(
      nluSetup(`kind = "script"\nmodule = "${module}"`, { dir: dir.path, deps: { database: db.database, writes: db.writes, poolSize: 1 } }),
    ).rejects.toThrow(`the NLU module ${module} of endpoint support has no getNluResult: export getNluResult({ text, data, language })`);
  });
});
