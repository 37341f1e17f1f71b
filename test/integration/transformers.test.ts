/**
 * Transformers (docs/transformers.md): the operator's handleInput,
 * handleOutput, handleExecutionFinished, handleInject and handleNotify, run in worker threads with
 * a time limit, their returns checked, with httpRequest (one per execution), getSessionStorage and
 * console; through signed webhooks to the app and a fake Graph API.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { renameSync, writeFileSync } from "node:fs";
import { PSID, PSID_2, PAGE_TOKEN, APP_SECRET, VERIFY_TOKEN } from "../helpers/config.ts";
import { messageTexts, nextMid, startConversation, userText, type Conversation, type ConversationOptions, until, rows } from "../helpers/conversation.ts";
import type { LogRecord } from "../helpers/log.ts";

const PSID_3 = "6301234567890789";
const ADMIN_KEY = "test-admin-key-0123456789";
const MODULE = "transformers/t.ts";
/** Each test waits for events with generous limits of its own; the file runs without `--timeout` too. */
const TEST_TIMEOUT_MS = 30_000;

/** A flow that answers with what it was given, as JSON. */
const REPORT_FLOW = {
  "flows/report.ts": `export default async (input) => ({ outputs: [{ text: JSON.stringify({ user_id: input.user_id, session_id: input.session_id, text: input.text, data: input.data }) }] });`,
};

/** A flow that answers each input with two messages. */
const TWO_OUTPUTS_FLOW = {
  "flows/two.ts": `export default async (input) => ({ outputs: [{ text: "first " + input.text }, { text: "second " + input.text, quick_replies: [{ title: "Yes", payload: "YES" }] }] });`,
};

interface Switches {
  input?: boolean;
  output?: boolean;
  execution_finished?: boolean;
  inject?: boolean;
  notify?: boolean;
  abort_on_error?: boolean;
}

/** `[endpoints.transformers]` with the module and the given switches. */
function transformerToml(switches: Switches): string {
  const lines = ["[endpoints.transformers]", `module = "${MODULE}"`];
  for (const [name, on] of Object.entries(switches)) lines.push(`${name} = ${on}`);
  return lines.join("\n");
}

const open: Conversation[] = [];
const servers: { stop(force?: boolean): unknown }[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  for (const s of servers.splice(0)) s.stop(true);
});

/** An app whose endpoint runs the transformer module `code` with the given functions switched on. */
async function withTransformer(
  code: string,
  switches: Switches,
  options: ConversationOptions & { flowFiles?: Record<string, string> } = {},
): Promise<Conversation> {
  const { flowFiles, ...rest } = options;
  const c = await startConversation({
    ...rest,
    files: { [MODULE]: code, ...(flowFiles ?? {}), ...(rest.files ?? {}) },
    endpointToml: transformerToml(switches),
  });
  open.push(c);
  return c;
}

/** Posts a text from `psid` and resolves with the text of the next message sent to them. */
async function say(c: Conversation, text: string, psid = PSID, timeoutMs = 10_000): Promise<string> {
  const before = texts(c, psid).length;
  expect(await c.post([userText(text, { psid })])).toBe(200);
  await waitForMessages(c, before + 1, psid, timeoutMs);
  return texts(c, psid)[before]!;
}

/** The texts of the messages (not sender actions) sent to `psid`. */
const texts = (c: Conversation, psid = PSID) => messageTexts(c.sends(psid));

/** Awaits the count of sends to `psid` (all messages: typing indicators and mark_seen are off). */
async function waitForMessages(c: Conversation, count: number, psid = PSID, timeoutMs = 10_000): Promise<void> {
  await c.graph.waitForSends(count, { recipientId: psid }, timeoutMs);
}

/** The inbox row of a message, by its mid. */
async function inboxRow(c: Conversation, mid: string): Promise<{ status: string; last_error: string | null } | undefined> {
  const [row] = await rows(c, "SELECT status, last_error FROM inbox WHERE json_extract(event, '$.message.mid') = ?", [mid]);
  return row ? { status: String(row[0]), last_error: row[1] === null ? null : String(row[1]) } : undefined;
}

/** Waits for the message's inbox row to be processed; returns it. */
async function processed(c: Conversation, mid: string) {
  let row: Awaited<ReturnType<typeof inboxRow>>;
  await until(async () => (row = await inboxRow(c, mid)) !== undefined && row.status !== "pending");
  return row!;
}

const logs = (c: Conversation, match: (r: LogRecord) => boolean) => c.logs.records().filter(match);
async function waitForLog(c: Conversation, match: (r: LogRecord) => boolean, count = 1, timeoutMs = 10_000): Promise<LogRecord[]> {
  await until(() => logs(c, match).length >= count, timeoutMs);
  return logs(c, match);
}

async function currentSession(c: Conversation, psid = PSID): Promise<string> {
  const [row] = await rows(c, "SELECT id FROM sessions WHERE endpoint_id = 'support' AND user_id = ? AND ended_at IS NULL", [psid]);
  return String(row![0]);
}

// --- handleInput -------------------------------------------------------------------------------

describe("handleInput", () => {
  test(
    "rewrites the text; fields left undefined keep the endpoint's values",
    async () => {
      const c = await withTransformer(`export function handleInput({ event }) { return { text: "rewritten: " + event.message.text.toUpperCase() }; }`, {
        input: true,
      });
      expect(await say(c, "hello")).toBe("You said: rewritten: HELLO");
      // The reply went to the same user, in the endpoint's session.
      expect(c.sends().every((s) => s.recipientId === PSID)).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "returned data reaches the flow, data.request is kept; user and session stay; the endpoint argument holds no secrets",
    async () => {
      const c = await withTransformer(
        `export function handleInput({ endpoint, request, event }) {
        return { data: { order: 42, endpoint, has_request_body: typeof request?.body === "object", event_mid: event.message.mid } };
      }`,
        { input: true },
        { flow: 'kind = "script"\nmodule = "flows/report.ts"', flowFiles: REPORT_FLOW },
      );
      const mid = nextMid();
      expect(await c.post([userText("what is my order", { mid })])).toBe(200);
      await waitForMessages(c, 1);
      const reply = texts(c)[0]!;
      const seen = JSON.parse(reply);
      // Not returned by the transformer: the endpoint's own values.
      expect(seen.text).toBe("what is my order");
      expect(seen.user_id).toBe(PSID);
      expect(seen.session_id).toBe(await currentSession(c));
      // The transformer's data, next to the raw event.
      expect(seen.data.order).toBe(42);
      expect(seen.data.has_request_body).toBe(true);
      expect(seen.data.event_mid).toBe(mid);
      expect(seen.data.request).toMatchObject({ sender: { id: PSID }, message: { mid, text: "what is my order" } });
      // What the transformer sees of its endpoint: the id, no token, no secret.
      expect(seen.data.endpoint.id).toBe("support");
      expect(seen.data.endpoint.flow).toBe("agent");
      for (const secret of [PAGE_TOKEN, APP_SECRET, VERIFY_TOKEN]) expect(reply).not.toContain(secret);
      expect(JSON.stringify(seen.data.endpoint)).not.toMatch(/token|secret/i);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a null or false return drops the input: no reply, and the inbox row is done",
    async () => {
      const c = await withTransformer(
        `export function handleInput({ event }) {
        const text = event.message.text;
        if (text === "drop-null") return null;
        if (text === "drop-false") return false;
        return { text };
      }`,
        { input: true },
      );
      const nullMid = nextMid();
      const falseMid = nextMid();
      expect(await c.post([userText("drop-null", { mid: nullMid })])).toBe(200);
      expect(await c.post([userText("drop-false", { mid: falseMid, timestamp: Date.now() + 1 })])).toBe(200);
      expect(await processed(c, nullMid)).toEqual({ status: "done", last_error: null });
      expect(await processed(c, falseMid)).toEqual({ status: "done", last_error: null });
      // The lane goes on: a later message is answered, and it is the only reply.
      expect(await say(c, "kept")).toBe("You said: kept");
      expect(texts(c)).toEqual(["You said: kept"]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a throw is logged with the endpoint and the function; the original input goes on",
    async () => {
      const c = await withTransformer(`export function handleInput() { throw new Error("input exploded"); }`, { input: true });
      expect(await say(c, "original text")).toBe("You said: original text");
      const [line] = await waitForLog(c, (r) => r.function === "handleInput" && String(r.msg).includes("input exploded"));
      expect(line!.endpoint).toBe("support");
      expect(line!.level).toBe("warn");
      expect(line!.msg).toContain("handleInput");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a throw with abort_on_error stops the input: no reply, the inbox row done with the reason",
    async () => {
      const c = await withTransformer(
        `export function handleInput({ event }) { if (event.message.text === "boom") throw new Error("input exploded"); return {}; }`,
        { input: true, abort_on_error: true },
      );
      const mid = nextMid();
      expect(await c.post([userText("boom", { mid })])).toBe(200);
      const row = await processed(c, mid);
      expect(row.status).toBe("done");
      expect(row.last_error).toContain("transformer");
      expect(row.last_error).toContain("input exploded");
      const [line] = await waitForLog(c, (r) => r.function === "handleInput" && String(r.msg).includes("input exploded"));
      expect(line!.endpoint).toBe("support");
      expect(await say(c, "fine")).toBe("You said: fine");
      expect(texts(c)).toEqual(["You said: fine"]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "invalid returns are logged and ignored: text over 10,000 characters, user_id over 256, data not an object",
    async () => {
      const c = await withTransformer(
        `export function handleInput({ event }) {
        switch (event.message.text) {
          case "long text": return { text: "x".repeat(10_001) };
          case "long user": return { user_id: "u".repeat(257) };
          case "string data": return { data: "not an object" };
          case "array data": return { data: [1, 2, 3] };
          case "exact limits": return { text: "y".repeat(10_000) };
        }
        return {};
      }`,
        { input: true },
      );
      const invalid = (r: LogRecord) => r.function === "handleInput" && r.endpoint === "support" && String(r.msg).includes("invalid return value");
      expect(await say(c, "long text")).toBe("You said: long text");
      await waitForLog(c, invalid, 1);
      expect(await say(c, "long user")).toBe("You said: long user");
      await waitForLog(c, invalid, 2);
      expect(await say(c, "string data")).toBe("You said: string data");
      await waitForLog(c, invalid, 3);
      expect(await say(c, "array data")).toBe("You said: array data");
      await waitForLog(c, invalid, 4);
      const lines = logs(c, invalid);
      expect(lines[0]!.msg).toContain("/text");
      expect(lines[1]!.msg).toContain("/user_id");
      expect(lines[2]!.msg).toContain("/data");
      expect(lines[3]!.msg).toContain("/data");
      // At the limit it is accepted (the echo's answer is split into Messenger's 2,000-character messages).
      const before = texts(c).length;
      expect(await c.post([userText("exact limits")])).toBe(200);
      await until(() => texts(c).slice(before).join("").split("y").length - 1 === 10_000);
      expect(texts(c)[before]).toStartWith("You said:");
      expect(logs(c, invalid)).toHaveLength(4);
    },
    TEST_TIMEOUT_MS,
  );
});

// --- handleOutput ------------------------------------------------------------------------------

describe("handleOutput", () => {
  test(
    "the returned message is sent as given",
    async () => {
      const c = await withTransformer(
        `export function handleOutput({ output, processedOutput, userId, sessionId }) {
        return { text: processedOutput.text.toUpperCase() + " (" + output.quick_replies.length + " quick replies dropped for " + userId + ")" };
      }`,
        { output: true },
      );
      expect(await say(c, "hi")).toBe(`YOU SAID: HI (3 quick replies dropped for ${PSID})`);
      const [send] = c.sends().filter((s) => s.type === "message");
      // As given; only the product's own echo stamp is added.
      const { metadata, ...message } = send!.message;
      expect(message).toEqual({ text: `YOU SAID: HI (3 quick replies dropped for ${PSID})` });
      expect(metadata).toStartWith("me:");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a falsy return drops that output; the turn's other outputs still go",
    async () => {
      const c = await withTransformer(
        `export function handleOutput({ output, processedOutput }) {
        if (output.text.startsWith("first")) return null;
        if (output.text === "second drop") return false;
        return processedOutput;
      }`,
        { output: true },
        { flow: 'kind = "script"\nmodule = "flows/two.ts"', flowFiles: TWO_OUTPUTS_FLOW },
      );
      expect(await say(c, "hi")).toBe("second hi");
      // Both outputs of "drop" are dropped; the next turn is answered as before.
      const mid = nextMid();
      expect(await c.post([userText("drop", { mid })])).toBe(200);
      expect(await processed(c, mid)).toEqual({ status: "done", last_error: null });
      expect(await say(c, "again")).toBe("second again");
      expect(texts(c)).toEqual(["second hi", "second again"]);
      // The kept message is the converted one, quick replies and all.
      expect(c.sends().filter((s) => s.type === "message")[0]!.message.quick_replies).toHaveLength(1);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a throw without abort_on_error sends the original output",
    async () => {
      const c = await withTransformer(
        `export function handleOutput({ output, processedOutput }) {
        if (output.text.startsWith("first")) throw new Error("output exploded");
        return { text: "T:" + processedOutput.text };
      }`,
        { output: true },
        { flow: 'kind = "script"\nmodule = "flows/two.ts"', flowFiles: TWO_OUTPUTS_FLOW },
      );
      expect(await c.post([userText("hi")])).toBe(200);
      await waitForMessages(c, 2);
      expect(texts(c)).toEqual(["first hi", "T:second hi"]);
      const [line] = await waitForLog(c, (r) => r.function === "handleOutput" && String(r.msg).includes("output exploded"));
      expect(line!.endpoint).toBe("support");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a throw with abort_on_error drops that output only",
    async () => {
      const c = await withTransformer(
        `export function handleOutput({ output, processedOutput }) {
        if (output.text.startsWith("first")) throw new Error("output exploded");
        return { text: "T:" + processedOutput.text };
      }`,
        { output: true, abort_on_error: true },
        { flow: 'kind = "script"\nmodule = "flows/two.ts"', flowFiles: TWO_OUTPUTS_FLOW },
      );
      expect(await say(c, "hi")).toBe("T:second hi");
      expect(await say(c, "again")).toBe("T:second again");
      expect(texts(c)).toEqual(["T:second hi", "T:second again"]);
      const lines = await waitForLog(c, (r) => r.function === "handleOutput" && String(r.msg).includes("output exploded"), 2);
      expect(lines.every((l) => l.endpoint === "support")).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );
});

// --- handleExecutionFinished -------------------------------------------------------------------

describe("handleExecutionFinished", () => {
  test(
    "runs after each turn with the user and the session",
    async () => {
      const c = await withTransformer(`export function handleExecutionFinished({ userId, sessionId }) { console.log("finished", userId, sessionId); }`, {
        execution_finished: true,
      });
      const finished = (r: LogRecord) => r.function === "handleExecutionFinished" && String(r.msg).includes("finished");
      expect(await say(c, "one")).toBe("You said: one");
      const session = await currentSession(c);
      const [first] = await waitForLog(c, finished, 1);
      expect(first!.msg).toBe(`transformer: finished ${PSID} ${session}`);
      expect(first!.endpoint).toBe("support");
      expect(first!.level).toBe("info");
      expect(await say(c, "two")).toBe("You said: two");
      const lines = await waitForLog(c, finished, 2);
      expect(lines[1]!.msg).toBe(`transformer: finished ${PSID} ${session}`);
      expect(await say(c, "three", PSID_2)).toBe("You said: three");
      const third = (await waitForLog(c, finished, 3))[2]!;
      expect(third.msg).toBe(`transformer: finished ${PSID_2} ${await currentSession(c, PSID_2)}`);
    },
    TEST_TIMEOUT_MS,
  );
});

// --- isolation ---------------------------------------------------------------------------------

describe("isolation", () => {
  test(
    "a busy loop is stopped after the time limit; other users are answered meanwhile; the input then goes on",
    async () => {
      const c = await withTransformer(
        `export function handleInput({ event }) {
        if (event.message.text === "loop") {
          console.log("looping for", event.sender.id);
          while (true) {}
        }
        return {};
      }`,
        { input: true },
        // The time limit is 5 s in production; 1 s here keeps the test fast.
        { transformers: { timeoutMs: 1_000 } },
      );
      const stopped = (r: LogRecord) => r.function === "handleInput" && String(r.msg).includes("did not finish within 1000 ms and was stopped");
      expect(await c.post([userText("loop", { psid: PSID })])).toBe(200);
      await waitForLog(c, (r) => r.function === "handleInput" && r.msg === `transformer: looping for ${PSID}`);
      // User A's transformer is spinning: other users are answered, and webhooks are taken.
      expect(await say(c, "b one", PSID_2)).toBe("You said: b one");
      expect(await say(c, "c one", PSID_3)).toBe("You said: c one");
      expect(await say(c, "b two", PSID_2)).toBe("You said: b two");
      expect(logs(c, stopped)).toHaveLength(0);
      expect(texts(c, PSID)).toEqual([]);
      // Then A's run is stopped, and A's input goes on with the original text (abort_on_error off).
      await waitForMessages(c, 1, PSID);
      expect(texts(c, PSID)).toEqual(["You said: loop"]);
      const [line] = await waitForLog(c, stopped);
      expect(line!.endpoint).toBe("support");
      // The stopped worker was replaced: A is answered again.
      expect(await say(c, "after", PSID)).toBe("You said: after");
    },
    TEST_TIMEOUT_MS,
  );
});

describe("isolation, every worker busy", () => {
  test(
    "five users' busy loops (more than the four workers) do not hold up a sixth user",
    async () => {
      const c = await withTransformer(
        `export function handleInput({ event }) {
        if (event.message.text === "loop") { console.log("looping for", event.sender.id); while (true) {} }
        return {};
      }`,
        { input: true },
        // 5 s in production; 3 s here: long enough that the sixth user must not wait for it.
        { transformers: { timeoutMs: 3_000 } },
      );
      const loopers = ["6301234567800001", "6301234567800002", "6301234567800003", "6301234567800004", "6301234567800005"];
      for (const psid of loopers) expect(await c.post([userText("loop", { psid })])).toBe(200);
      await waitForLog(c, (r) => r.function === "handleInput" && String(r.msg).startsWith("transformer: looping for"), 5);
      expect(await say(c, "still here", PSID_2)).toBe("You said: still here");
      expect(logs(c, (r) => String(r.msg).includes("was stopped"))).toHaveLength(0);
    },
    TEST_TIMEOUT_MS,
  );
});

// --- globals: httpRequest, getSessionStorage, console ------------------------------------------

describe("httpRequest", () => {
  test(
    "one request per execution; a second fails; the next execution may make one again",
    async () => {
      let hits = 0;
      const server = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        fetch: () => Response.json({ n: ++hits }),
      });
      servers.push(server);
      const c = await withTransformer(
        `const URL = ${JSON.stringify(`http://127.0.0.1:${server.port}/lookup`)};
      export async function handleInput() {
        const first = await httpRequest({ uri: URL, method: "GET", json: true });
        let second = "allowed";
        try { await httpRequest({ uri: URL }); } catch (error) { second = error.message; }
        return { text: "got " + first.n + "; second: " + second };
      }`,
        { input: true },
      );
      const one = await say(c, "one");
      expect(one).toStartWith("You said: got 1; second: ");
      expect(one).toContain("one request per");
      const two = await say(c, "two");
      expect(two).toStartWith("You said: got 2; second: ");
      expect(two).toContain("one request per");
      expect(hits).toBe(2);
    },
    TEST_TIMEOUT_MS,
  );
});

describe("getSessionStorage", () => {
  const COUNTER = `export async function handleInput({ event }) {
    const storage = await getSessionStorage(event.sender.id, "counter");
    storage.count = (storage.count ?? 0) + 1;
    return { text: "count " + storage.count };
  }`;

  test(
    "persists across executions and across a restart on the same database",
    async () => {
      const c = await withTransformer(COUNTER, { input: true });
      expect(await say(c, "a")).toBe("You said: count 1");
      expect(await say(c, "b")).toBe("You said: count 2");
      expect(await say(c, "c")).toBe("You said: count 3");
      // Per user: another user starts at 1.
      expect(await say(c, "x", PSID_2)).toBe("You said: count 1");
      open.splice(open.indexOf(c), 1);
      await c.close({ keepDir: true, keepGraph: true });

      const again = await startConversation({ dir: c.dir, graph: c.graph, endpointToml: transformerToml({ input: true }) });
      open.push(again);
      expect(await say(again, "d")).toBe("You said: count 4");
      expect(await say(again, "y", PSID_2)).toBe("You said: count 2");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "is shared by the functions: handleInput and handleExecutionFinished of quick turns both keep their changes",
    async () => {
      // handleExecutionFinished of one turn runs while the next turn's handleInput may already run:
      // each changes its own top-level key of the same storage, and neither change may be lost.
      const c = await withTransformer(
        `export async function handleInput({ event }) {
        const storage = await getSessionStorage(event.sender.id, "stats");
        storage.inputs = (storage.inputs ?? 0) + 1;
        return {};
      }
      export async function handleExecutionFinished({ userId }) {
        const storage = await getSessionStorage(userId, "stats");
        await new Promise((resolve) => setTimeout(resolve, 5)); // some work, e.g. an httpRequest
        storage.finished = (storage.finished ?? 0) + 1;
        console.log("finished turn");
      }`,
        { input: true, execution_finished: true },
      );
      const start = Date.now();
      expect(await c.post(Array.from({ length: 10 }, (_, i) => userText(`m${i}`, { timestamp: start + i })))).toBe(200);
      await waitForMessages(c, 10);
      await waitForLog(c, (r) => r.function === "handleExecutionFinished" && r.msg === "transformer: finished turn", 10);
      const stored = async () => {
        const [row] = await rows(c, "SELECT value FROM transformer_storage WHERE endpoint_id = 'support' AND storage_key = ?", [
          JSON.stringify([PSID, "stats"]),
        ]);
        return row ? JSON.parse(String(row[0])) : null;
      };
      // The last save follows its log line: give it a moment, then compare.
      await until(async () => JSON.stringify(await stored()) === JSON.stringify({ inputs: 10, finished: 10 }), 3_000).catch(() => {});
      expect(await stored()).toEqual({ inputs: 10, finished: 10 });
    },
    TEST_TIMEOUT_MS,
  );
});

describe("console", () => {
  test(
    "console.error, console.warn and console.log land in the log at error, warn and info level",
    async () => {
      const c = await withTransformer(
        `export function handleInput({ event }) {
        console.error("error line", { code: 7 });
        console.warn("warn line");
        console.log("log line", event.message.text);
        return {};
      }`,
        { input: true },
      );
      expect(await say(c, "hi")).toBe("You said: hi");
      const fromTransformer = (r: LogRecord) => r.function === "handleInput" && String(r.msg).startsWith("transformer: ");
      const lines = await waitForLog(c, fromTransformer, 3);
      const byText = (text: string) => lines.find((l) => String(l.msg).includes(text))!;
      expect(byText("error line")).toMatchObject({ level: "error", msg: 'transformer: error line {"code":7}', endpoint: "support", function: "handleInput" });
      expect(byText("warn line")).toMatchObject({ level: "warn", msg: "transformer: warn line", endpoint: "support", function: "handleInput" });
      expect(byText("log line")).toMatchObject({ level: "info", msg: "transformer: log line hi", endpoint: "support", function: "handleInput" });
    },
    TEST_TIMEOUT_MS,
  );
});

// --- reload ------------------------------------------------------------------------------------

describe("reload", () => {
  test(
    "a changed module is picked up without a restart; one that does not load keeps the old code",
    async () => {
      const c = await withTransformer(`export function handleInput({ event }) { return { text: "v1 " + event.message.text }; }`, { input: true });
      const file = c.dir.join(MODULE);
      expect(await say(c, "hi")).toBe("You said: v1 hi");

      const reloaded = (r: LogRecord) => r.msg === "transformer module reloaded";
      await Bun.write(file, `export function handleInput({ event }) { return { text: "v2 " + event.message.text }; }`);
      const [line] = await waitForLog(c, reloaded, 1);
      expect(line!.endpoint).toBe("support");
      expect(await say(c, "hi")).toBe("You said: v2 hi");

      const notLoaded = (r: LogRecord) => r.level === "error" && String(r.msg).includes("does not load");
      await Bun.write(file, `export function handleInput({ event }) { return { text: "v3 " + ; }`);
      const [error] = await waitForLog(c, notLoaded, 1);
      expect(error!.endpoint).toBe("support");
      expect(await say(c, "hi")).toBe("You said: v2 hi");
      expect(logs(c, reloaded)).toHaveLength(1);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a module saved by a rename (as editors and deploy tools save atomically) is picked up every time",
    async () => {
      const c = await withTransformer(`export function handleInput({ event }) { return { text: "v1 " + event.message.text }; }`, { input: true });
      const file = c.dir.join(MODULE);
      expect(await say(c, "hi")).toBe("You said: v1 hi");
      const reloaded = (r: LogRecord) => r.msg === "transformer module reloaded";
      for (const version of ["v2", "v3", "v4"]) {
        const before = logs(c, reloaded).length;
        writeFileSync(`${file}.tmp`, `export function handleInput({ event }) { return { text: "${version} " + event.message.text }; }`);
        renameSync(`${file}.tmp`, file);
        await until(() => logs(c, reloaded).length > before, 5_000).catch(() => {});
        expect({ version, reloaded: logs(c, reloaded).length > before }).toEqual({ version, reloaded: true });
        expect(await say(c, "hi")).toBe(`You said: ${version} hi`);
      }
    },
    TEST_TIMEOUT_MS,
  );
});

// --- handleInject / handleNotify ---------------------------------------------------------------

const MAPPER = `
  function map({ request }) {
    const body = request.body;
    if (!body || !body.customer) return null;
    // The admin key is not passed on to the transformer.
    const leaked = request.headers.authorization ? " (saw the admin key)" : "";
    return { user_id: body.customer.psid, text: body.message + leaked };
  }
  createWebhookTransformer({ handleInject: map, handleNotify: map });
`;

async function postHook(c: Conversation, kind: "inject" | "notify", body: unknown, key: string | null = ADMIN_KEY): Promise<{ status: number; json: any }> {
  const response = await fetch(`${c.url}/webhooks/support/${kind}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

describe("handleInject and handleNotify", () => {
  const admin = `[admin]\napi_keys = ["${ADMIN_KEY}"]`;

  test(
    "an arbitrary body is mapped: inject runs the flow, notify sends the text",
    async () => {
      const c = await withTransformer(MAPPER, { inject: true, notify: true }, { extra: admin });
      expect(await say(c, "hi")).toBe("You said: hi"); // the user has written once

      const injected = await postHook(c, "inject", { customer: { psid: PSID }, message: "Your order shipped" });
      expect(injected.status).toBe(202);
      expect(injected.json).toMatchObject({ status: "queued", user_id: PSID });
      await waitForMessages(c, 2);
      expect(texts(c)[1]).toBe("You said: Your order shipped");

      const notified = await postHook(c, "notify", { customer: { psid: PSID }, message: "Your order shipped" });
      expect(notified.status).toBe(202);
      expect(notified.json).toMatchObject({ status: "queued", user_id: PSID, messages: 1 });
      await waitForMessages(c, 3);
      const sent = c.sends(PSID).filter((s) => s.type === "message");
      const { metadata: _stamp, ...message } = sent[2]!.message;
      expect(message).toEqual({ text: "Your order shipped" }); // no flow: no quick replies
      expect(sent[2]!.messagingType).toBe("UPDATE");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "without the admin key 401; an unknown user 404; a falsy return 200 dropped with nothing sent",
    async () => {
      const c = await withTransformer(MAPPER, { inject: true, notify: true }, { extra: admin });
      const body = { customer: { psid: PSID }, message: "Your order shipped" };
      expect((await postHook(c, "inject", body, null)).status).toBe(401);
      expect((await postHook(c, "notify", body, "wrong-key-0123456789")).status).toBe(401);
      // The user has not written yet.
      expect((await postHook(c, "inject", body)).status).toBe(404);
      expect((await postHook(c, "notify", body)).status).toBe(404);

      expect(await say(c, "hi")).toBe("You said: hi");
      for (const kind of ["inject", "notify"] as const) {
        const dropped = await postHook(c, kind, { event: "ping" });
        expect(dropped.status).toBe(200);
        expect(dropped.json.status).toBe("dropped");
      }
      // A later notify is the next thing the user gets: the dropped ones sent nothing.
      expect((await postHook(c, "notify", { customer: { psid: PSID }, message: "later" })).status).toBe(202);
      await waitForMessages(c, 2);
      expect(await say(c, "bye")).toBe("You said: bye");
      expect(texts(c)).toEqual(["You said: hi", "later", "You said: bye"]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a function switched off answers 404",
    async () => {
      const c = await withTransformer(MAPPER, { inject: true, notify: false }, { extra: admin });
      expect(await say(c, "hi")).toBe("You said: hi");
      const body = { customer: { psid: PSID }, message: "Your order shipped" };
      const off = await postHook(c, "notify", body);
      expect(off.status).toBe(404);
      expect(off.json.error).toBe("transformer_off");
      expect((await postHook(c, "inject", body)).status).toBe(202);
      await waitForMessages(c, 2);
      expect(texts(c)).toEqual(["You said: hi", "You said: Your order shipped"]);
    },
    TEST_TIMEOUT_MS,
  );
});
