/**
 * handlePreNlu and handlePostNlu in the endpoint's transformer module (src/nlu/understanding.ts,
 * transformers/transformers.ts `nluHook`): what they are given and may change, a falsy return,
 * and a failure with and without abort_on_error.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { systemClock } from "../../../src/core/clock.ts";
import type { NluResult } from "../../../src/nlu/result.ts";
import { FakeNlu } from "../../../src/simulator/fake-nlu/fake-nlu.ts";
import { Transformers } from "../../../src/transformers/transformers.ts";
import { PAGE_TOKEN, configFromToml, settingsToml } from "../../helpers/config.ts";
import { collectingLogger } from "../../helpers/log.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { nluSetup, scratchDatabase, textInput, type NluSetup } from "./support.ts";

const dir = tempDir("nlu-hooks");
let fake: FakeNlu;
let db: Awaited<ReturnType<typeof scratchDatabase>>;
const running: { s: NluSetup; t: Transformers }[] = [];
beforeAll(async () => {
  fake = FakeNlu.start();
  db = await scratchDatabase(dir.path);
});
afterEach(async () => {
  for (const { s, t } of running.splice(0)) {
    await s.stop();
    await t.stop();
  }
  fake.reset();
});
afterAll(async () => {
  fake.stop();
  await db.close();
  dir.remove();
});

let files = 0;
/** An endpoint with the Rasa stand-in and a transformer module `code` with these switches. */
async function hooks(code: string, switches: { pre_nlu?: boolean; post_nlu?: boolean; abort_on_error?: boolean }, nlu = "") {
  const module = dir.write(`hooks-${++files}.ts`, code);
  const table = ["[endpoints.transformers]", `module = "${module}"`, ...Object.entries(switches).map(([k, v]) => `${k} = ${v}`)].join("\n");
  const nluLines = `kind = "rasa"\nurl = "${fake.url}"\nretries = 0\n${nlu}`;
  const config = configFromToml(settingsToml({ extra: `[endpoints.nlu]\n${nluLines}\n${table}` }), { dir: dir.path });
  const t = await Transformers.start({ config, database: db.database, writes: db.writes, clock: systemClock, log: collectingLogger().log, poolSize: 1 });
  const s = await nluSetup(nluLines, { more: table, dir: dir.path, deps: { transformers: t } });
  running.push({ s, t });
  return s;
}

const PRE = `
export function handlePreNlu({ text, data, language }) {
  if (text === "skip") return null;
  if (text === "boom") throw new Error("boom");
  if (text === "leak") throw new Error("the token is ${PAGE_TOKEN}");
  if (text === "bad") return { text: 42 };
  return { text: text.toLowerCase().replace(/pls/g, "please"), data: { ...data, pre: { language, had: Object.keys(data).sort() } } };
}`;

const POST = `
export function handlePostNlu({ text, data, nluResult, connectorOutput }) {
  if (text === "drop") return false;
  if (text === "bad") return { nluResult: { intent: 7 } };
  if (text === "boom") throw new Error("post boom");
  if (nluResult.intent === "nlu_fallback") return { data: { ...data, fallback: true }, nluResult: { ...nluResult, intent: null, raw: undefined } };
  return { data: { ...data, post: { text, seenIntent: nluResult.intent, rasaText: connectorOutput.text } }, nluResult: { ...nluResult, intent: "shop." + nluResult.intent } };
}`;

describe("handlePreNlu({ text, data, language }) → { text, data }", () => {
  test("its text is what the connector reads and the flow gets; its data replaces the input's (the raw event and profile stay)", async () => {
    const s = await hooks(PRE, { pre_nlu: true });
    const input = textInput("HELLO pls", { data: { request: { message: { mid: "m_9" } }, profile: { first_name: "Ada" }, tag: 1 } });
    expect(await s.run(input)).toBe(true);
    expect(fake.requests[0]!.body).toEqual({ text: "hello please", message_id: "m_9" });
    expect(input.text).toBe("hello please");
    expect(input.data).toEqual({
      request: { message: { mid: "m_9" } },
      profile: { first_name: "Ada" },
      tag: 1,
      pre: { language: "en", had: ["profile", "tag"] },
    });
    expect((input.nlu as NluResult).intent).toBe("greet");
  });

  test("a falsy return leaves NLU out for this input: no call, no error", async () => {
    const s = await hooks(PRE, { pre_nlu: true });
    const input = textInput("skip");
    expect(await s.run(input)).toBe(true);
    expect(fake.requests).toHaveLength(0);
    expect(input.nlu).toBeNull();
    expect(input.nlu_error).toBeUndefined();
  });

  test("a failure without abort_on_error: logged, and the original text goes to the connector", async () => {
    const s = await hooks(PRE, { pre_nlu: true });
    const input = textInput("boom");
    await s.run(input);
    expect(fake.requests[0]!.body).toMatchObject({ text: "boom" });
    expect(input.nlu).toMatchObject({ intent: "nlu_fallback" });
    expect(s.logs.records().some((r) => r.msg === "transformer handlePreNlu failed; the original value is used: handlePreNlu threw: boom")).toBe(true);
  });

  test("a failure with abort_on_error is a failed NLU call: no connector call, nlu_error, on_error decides", async () => {
    const s = await hooks(PRE, { pre_nlu: true, abort_on_error: true });
    const input = textInput("boom");
    expect(await s.run(input)).toBe(true);
    expect(fake.requests).toHaveLength(0);
    expect(input.nlu).toBeNull();
    expect(input.nlu_error).toBe("the pre-NLU transformer failed: handlePreNlu threw: boom");
    const invalid = textInput("bad");
    await s.run(invalid);
    expect(invalid.nlu_error).toBe("the pre-NLU transformer failed: invalid return value: /text: Expected string");

    // No secret of the settings (here a Page's token) reaches nlu_error.
    const leaking = textInput("leak");
    await s.run(leaking);
    expect(leaking.nlu_error).toBe("the pre-NLU transformer failed: handlePreNlu threw: the token is [redacted]");

    const skipping = await hooks(PRE, { pre_nlu: true, abort_on_error: true }, 'on_error = "skip_turn"');
    expect(await skipping.run(textInput("boom"))).toBe(false);
  });
});

describe("handlePostNlu({ text, data, nluResult, connectorOutput }) → { data, nluResult }", () => {
  test("it sees the result and Rasa's own answer; its nluResult and data replace them (raw stays the connector's)", async () => {
    const s = await hooks(POST, { post_nlu: true });
    const input = textInput("thanks");
    await s.run(input);
    const nlu = input.nlu as NluResult;
    expect(nlu.intent).toBe("shop.thanks");
    expect(nlu.score).toBe(0.98);
    expect(nlu.raw).toMatchObject({ text: "thanks", intent: { name: "thanks", confidence: 0.98 } });
    expect(input.data.post).toEqual({ text: "thanks", seenIntent: "thanks", rasaText: "thanks" });
    expect(input.data.request).toBeDefined();
  });

  test("it runs after min_score: it sees the intent already removed", async () => {
    const s = await hooks(
      `export function handlePostNlu({ nluResult }) { return { nluResult: { ...nluResult, raw: { saw: nluResult.intent } } }; }`,
      { post_nlu: true },
      "min_score = 0.99",
    );
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu).toMatchObject({ intent: null, raw: { saw: null } });
  });

  test("a falsy return drops the result: nlu null, no error", async () => {
    const s = await hooks(POST, { post_nlu: true });
    const input = textInput("drop");
    expect(await s.run(input)).toBe(true);
    expect(input.nlu).toBeNull();
    expect(input.nlu_error).toBeUndefined();
  });

  test("an invalid nluResult: ignored without abort_on_error (the connector's result stays), a failed call with it", async () => {
    const lenient = await hooks(POST, { post_nlu: true });
    const kept = textInput("bad");
    await lenient.run(kept);
    expect(kept.nlu).toMatchObject({ intent: "nlu_fallback" });
    expect(
      lenient.logs
        .records()
        .some((r) => r.msg.includes("transformer handlePostNlu failed; the original value is used: invalid return value: nluResult/intent")),
    ).toBe(true);

    const strict = await hooks(POST, { post_nlu: true, abort_on_error: true });
    const failed = textInput("bad");
    expect(await strict.run(failed)).toBe(true);
    expect(failed.nlu).toBeNull();
    expect(failed.nlu_error).toStartWith("the post-NLU transformer failed: invalid return value: nluResult/intent");
  });

  test("not called when the connector failed", async () => {
    const s = await hooks(`export function handlePostNlu() { throw new Error("must not run"); }`, { post_nlu: true, abort_on_error: true });
    fake.failNext({ status: 500 });
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu_error).toStartWith(`the Rasa server at ${fake.url}/model/parse answered HTTP 500`);
  });
});

test("Cognigy's createNluTransformer({ preNlu, postNlu })", async () => {
  const s = await hooks(
    `createNluTransformer({
      preNlu: ({ text, data }) => ({ text: text.replace("hullo", "hello"), data }),
      postNlu: ({ data, nluResult }) => ({ data, nluResult: { ...nluResult, entities: [{ type: "via", value: "cognigy" }] } }),
    });`,
    { pre_nlu: true, post_nlu: true },
  );
  const input = textInput("hullo");
  await s.run(input);
  expect(input.nlu).toMatchObject({ intent: "greet", entities: [{ type: "via", value: "cognigy" }] });
});
