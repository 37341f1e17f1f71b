/**
 * The NLU connector end to end (docs/nlu.md): a signed webhook, the turn, the real Rasa connector
 * against the fake NLU (src/simulator/fake-nlu/), the flow reading `input.nlu`, its reply sent
 * through the fake Graph API. Payloads skip NLU, `on_error = "skip_turn"` runs no flow, the key
 * never reaches the log, and /metrics counts the calls.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { FakeNlu } from "../../src/simulator/fake-nlu/fake-nlu.ts";
import { PAGE_ID, PSID, PSID_2 } from "../helpers/config.ts";
import { messageTexts, nextMid, rows, startConversation, until, userText, type Conversation } from "../helpers/conversation.ts";

const TOKEN = "rasa-auth-token-0123456789";
/** Each test waits for events with generous limits of its own; the file runs without `--timeout` too. */
const TEST_TIMEOUT_MS = 30_000;

/** A flow that answers with what it understood, as JSON. */
const REPORT_FLOW = {
  "flows/report.ts": `export default async (input) => ({ outputs: [{ text: JSON.stringify({ text: input.text, nlu: input.nlu, nlu_error: input.nlu_error ?? null }) }] });`,
};

let fake: FakeNlu;
const open: Conversation[] = [];
beforeAll(() => {
  fake = FakeNlu.start({ token: TOKEN });
});
afterAll(() => fake.stop());
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  fake.reset();
});

async function conversation(nlu = "") {
  const c = await startConversation({
    files: REPORT_FLOW,
    flow: 'kind = "script"\nmodule = "flows/report.ts"',
    endpointToml: `[endpoints.nlu]\nkind = "rasa"\nurl = "${fake.url}"\napi_key = "${TOKEN}"\n${nlu}`,
  });
  open.push(c);
  return c;
}

/** The flow's reports to a user, parsed. */
function reports(c: Conversation, psid = PSID): { text: string; nlu: any; nlu_error: string | null }[] {
  return messageTexts(c.sends(psid)).map((t) => JSON.parse(t));
}

describe("NLU in a turn", () => {
  test(
    "a signed webhook: the flow receives input.nlu from the Rasa server",
    async () => {
      const c = await conversation();
      const mid = nextMid();
      expect(await c.post([userText("Where is my order 7654321?", { mid })])).toBe(200);
      await c.graph.waitForSends(1, { recipientId: PSID }, 10_000);
      const [report] = reports(c);
      expect(report!.nlu).toMatchObject({
        intent: "order_status",
        entities: [{ type: "order_id", value: "7654321", start: 18, end: 25, extractor: "RegexEntityExtractor" }],
        ranking: [{ intent: "order_status" }],
        raw: { text: "Where is my order 7654321?", intent: { name: "order_status" } },
      });
      expect(report!.nlu_error).toBeNull();
      expect(fake.requests[0]).toMatchObject({ path: "/model/parse", query: { token: TOKEN }, body: { text: "Where is my order 7654321?", message_id: mid } });
      const metrics = await (await fetch(`${c.url}/metrics`)).text();
      expect(metrics).toContain('messenger_nlu_requests_total{endpoint="support",result="ok"} 1');
      expect(metrics).toContain('messenger_nlu_request_seconds_count{endpoint="support"} 1');
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a quick reply's payload skips NLU: nlu null, no call",
    async () => {
      const c = await conversation();
      await c.post([
        {
          sender: { id: PSID },
          recipient: { id: PAGE_ID },
          timestamp: Date.now(),
          message: { mid: nextMid(), text: "Yes", quick_reply: { payload: "CONFIRM" } },
        },
      ]);
      await c.graph.waitForSends(1, { recipientId: PSID }, 10_000);
      expect(reports(c)[0]).toEqual({ text: "CONFIRM", nlu: null, nlu_error: null });
      expect(fake.requests).toHaveLength(0);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'the NLU fails: the flow runs with nlu_error; with on_error = "skip_turn" it does not run, and the event says why',
    async () => {
      const c = await conversation("retries = 0");
      fake.failNext({ status: 500 });
      await c.post([userText("hello")]);
      await c.graph.waitForSends(1, { recipientId: PSID }, 10_000);
      expect(reports(c)[0]).toMatchObject({ nlu: null, nlu_error: expect.stringContaining("answered HTTP 500 ParsingError") });
      await c.close();

      const skipping = await conversation('retries = 0\non_error = "skip_turn"');
      fake.failNext({ status: 503 });
      const mid = nextMid();
      await skipping.post([userText("hello", { psid: PSID_2, mid })]);
      let row: Record<string, unknown> | undefined;
      await until(async () => {
        [row] = await rows(skipping, "SELECT status, last_error FROM inbox WHERE json_extract(event, '$.message.mid') = ?", [mid]);
        return row?.status === "done";
      });
      expect(String(row!.last_error)).toStartWith('NLU failed (on_error = "skip_turn"): the Rasa server at ');
      expect(String(row!.last_error)).toContain("answered HTTP 503");
      expect(skipping.sends(PSID_2)).toHaveLength(0);
      // The next input goes through.
      await skipping.post([userText("thanks", { psid: PSID_2 })]);
      await skipping.graph.waitForSends(1, { recipientId: PSID_2 }, 10_000);
      expect(reports(skipping, PSID_2)[0]!.nlu.intent).toBe("thanks");
      expect(skipping.logs.lines.join("\n")).not.toContain(TOKEN);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "one user's slow NLU does not hold up another user's turn",
    async () => {
      const c = await conversation("timeout_ms = 5000\nretries = 0");
      fake.failNext({ delayMs: Number.POSITIVE_INFINITY });
      const arrived = fake.nextRequest();
      await c.post([userText("hello", { psid: PSID })]);
      await arrived;
      await c.post([userText("thanks", { psid: PSID_2 })]);
      await c.graph.waitForSends(1, { recipientId: PSID_2 }, 10_000);
      expect(c.sends(PSID)).toHaveLength(0); // the first user still waits for the slow answer
      fake.releaseHeld();
      await c.graph.waitForSends(1, { recipientId: PSID }, 10_000);
      expect(reports(c)[0]!.nlu.intent).toBe("greet");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a stop while the NLU answers slowly does not cut the call short: the turn finishes with what it said",
    async () => {
      const c = await conversation("timeout_ms = 5000\nretries = 0");
      fake.failNext({ delayMs: Number.POSITIVE_INFINITY });
      const mid = nextMid();
      const arrived = fake.nextRequest();
      await c.post([userText("hello", { mid })]);
      await arrived;
      const stopped = c.app.shutdown(); // its grace for turns in progress: 2 s (test/helpers/conversation.ts)
      fake.releaseHeld();
      await stopped;
      const [event] = await rows(c, "SELECT status, last_error FROM inbox WHERE json_extract(event, '$.message.mid') = ?", [mid]);
      expect(event).toMatchObject({ status: "done", last_error: null });
      const [reply] = await rows(c, "SELECT body FROM outbox WHERE source = 'flow'");
      expect(JSON.parse(JSON.parse(String(reply!.body)).message.text).nlu.intent).toBe("greet");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a script connector with handlePreNlu and handlePostNlu switched on (and nothing else of the transformer module)",
    async () => {
      const c = await startConversation({
        files: {
          ...REPORT_FLOW,
          "nlu/rules.ts": `export function getNluResult({ text }) { return text.includes("refund") ? { intent: "refund", score: 0.8 } : { intent: null }; }`,
          "transformers/nlu-hooks.ts": `
            export function handlePreNlu({ text, data }) { return { text: text.replace("money back", "refund"), data }; }
            export function handlePostNlu({ data, nluResult }) { return { data, nluResult: { ...nluResult, entities: [{ type: "team", value: "billing" }] } }; }`,
        },
        flow: 'kind = "script"\nmodule = "flows/report.ts"',
        endpointToml: [
          "[endpoints.nlu]",
          'kind = "script"',
          'module = "nlu/rules.ts"',
          "[endpoints.transformers]",
          'module = "transformers/nlu-hooks.ts"',
          "pre_nlu = true",
          "post_nlu = true",
        ].join("\n"),
      });
      open.push(c);
      await c.post([userText("I want my money back")]);
      await c.graph.waitForSends(1, { recipientId: PSID }, 10_000);
      expect(reports(c)[0]).toEqual({
        text: "I want my refund",
        nlu: { intent: "refund", score: 0.8, entities: [{ type: "team", value: "billing" }], raw: { intent: "refund", score: 0.8 } },
        nlu_error: null,
      });
    },
    TEST_TIMEOUT_MS,
  );
});
