/**
 * Real-time translation in the whole server: signed webhooks in, the real provider code against
 * the fake providers over HTTP (src/simulator/fake-translation.ts), the replies through the fake
 * Graph API. One conversation per provider; the transcript; one slow user among others; the lock
 * across a restart; erasure, retention, export and metrics.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Flow } from "../../src/flows/flow.ts";
import type { FlowInput } from "../../src/flows/schema.ts";
import { FakeTranslation, type FakeProvider } from "../../src/simulator/fake-translation.ts";
import { api, WITH_KEYS } from "../helpers/admin.ts";
import { PSID, PSID_2 } from "../helpers/config.ts";
import { messageTexts, rows, startConversation, userText, type Conversation, type ConversationOptions } from "../helpers/conversation.ts";

let fake: FakeTranslation;
beforeAll(async () => {
  fake = await FakeTranslation.start();
});
afterAll(() => fake.stop());

/** A flow that answers "You wrote: <text>" with two quick replies, and keeps the inputs it got. */
function answeringFlow() {
  const inputs: FlowInput[] = [];
  const flow: Flow = {
    name: "agent",
    kind: "script",
    timeoutMs: 10_000,
    async run(input) {
      inputs.push(structuredClone(input));
      return { outputs: [{ text: `You wrote: ${input.text}. Thanks from **Acme**!`, quick_replies: [{ title: "Yes" }, { title: "No" }] }] };
    },
  };
  return { flows: new Map([["agent", flow]]), inputs };
}

const SETTINGS: Record<FakeProvider, (url: string) => string> = {
  deepl: (url) => `provider = "deepl"\napi_key = "deepl-key-0000:fx"\nurl = "${url}"`,
  google: (url) => `provider = "google"\napi_key = "AIza-google-key-0000"\nurl = "${url}"`,
  microsoft: (url) => `provider = "microsoft"\napi_key = "ms-key-000000"\nregion = "westeurope"\nurl = "${url}"`,
  libretranslate: (url) => `provider = "libretranslate"\nurl = "${url}"`,
  llm: (url) => `provider = "llm"\nurl = "${url}"\nmodel = "translator"`,
};

async function conversation(provider: FakeProvider, more = "", options: ConversationOptions = {}) {
  const flow = answeringFlow();
  const c = await startConversation({
    flows: flow.flows,
    ...WITH_KEYS,
    ...options,
    endpointToml: `[endpoints.translation]\n${SETTINGS[provider](fake.urlFor(provider))}\nretries = 0\n${more}\n${options.endpointToml ?? ""}`,
  });
  return { c, inputs: flow.inputs };
}

const sent = async (c: Conversation, n: number, psid = PSID) => c.graph.waitForSends(n, { recipientId: psid }, 10_000);

describe.each(["deepl", "google", "microsoft", "libretranslate", "llm"] as const)("%s", (provider) => {
  test("the German user's text reaches the flow in English; the reply, its quick replies too, comes back in German; the markers' text kept", async () => {
    const { c, inputs } = await conversation(provider);
    try {
      const before = fake.callsOf(provider).length;
      await c.post([userText("Hallo, ich brauche Hilfe")]);
      const [reply] = await sent(c, 1);
      expect(inputs[0]!.text).toBe("Hello, i need Help");
      expect(inputs[0]!.language).toBe("de");
      expect(inputs[0]!.data.translation).toEqual({ user_language: "de", flow_language: "en", original_text: "Hallo, ich brauche Hilfe" });
      expect(reply!.message.text).toBe("Du schrieb: Hallo, ich brauche Hilfe. Danke von Acme!");
      expect(reply!.message.quick_replies.map((q: { title: string; payload: string }) => [q.title, q.payload])).toEqual([
        ["Ja", "Yes"],
        ["Nein", "No"],
      ]);
      // One request for the input, one for every text of the reply.
      expect(fake.callsOf(provider).length - before).toBe(2);
    } finally {
      await c.close();
    }
  });
});

test("the transcript keeps the user's original (data.translation.original_text) and the text the flow got; the reply as the user read it", async () => {
  const { c } = await conversation("deepl");
  try {
    await c.post([userText("Danke")]);
    await sent(c, 1);
    const entries = (await api(c, "GET", `/api/conversations?user_id=${PSID}`)).body.entries as any[];
    const input = entries.find((e) => e.direction === "in");
    expect(input.text).toBe("Thanks");
    expect(input.data.translation).toEqual({ user_language: "de", flow_language: "en", original_text: "Danke" });
    const output = entries.find((e) => e.direction === "out");
    expect(output.text).toBe("Du schrieb: Danke. Danke von Acme!");
  } finally {
    await c.close();
  }
});

test("a slow provider holds only that user's lane: the others are answered meanwhile", async () => {
  const { c } = await conversation("deepl", "timeout_ms = 10000");
  try {
    fake.hold((call) => JSON.stringify(call.body).includes("langsam"));
    await c.post([userText("langsam bitte", { psid: PSID })]);
    while (fake.waiting === 0) await Bun.sleep(5);
    await c.post([userText("Hallo", { psid: PSID_2 })]);
    const [other] = await sent(c, 1, PSID_2);
    expect(other!.message.text).toContain("Hallo");
    expect(c.sends(PSID)).toHaveLength(0);
    fake.release();
    const [slow] = await sent(c, 1, PSID);
    expect(slow!.message.text).toContain("bitte");
  } finally {
    fake.release();
    await c.close();
  }
});

test("a provider that is down: the message still reaches the flow and the reply the user, untranslated; logged and counted", async () => {
  const { c, inputs } = await conversation("google", 'user_language = "de"');
  try {
    fake.fail({ provider: "google", status: 500, times: 2 });
    await c.post([userText("Hallo")]);
    const [reply] = await sent(c, 1);
    expect(inputs[0]!.text).toBe("Hallo");
    expect(inputs[0]!.data.translation).toMatchObject({ error: expect.stringContaining("google answered HTTP 500") });
    expect(reply!.message.text).toBe("You wrote: Hallo. Thanks from Acme!");
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(metrics).toMatch(/messenger_translation_requests_total\{direction="to_flow",endpoint="support",provider="google",result="server_error"\} 1/);
    expect(metrics).toMatch(/messenger_translation_requests_total\{direction="to_user",endpoint="support",provider="google",result="server_error"\} 1/);
    expect(c.logs.lines.join("\n")).not.toContain("AIza-google-key-0000");
  } finally {
    await c.close();
  }
});

test("the detected language, locked, survives a restart", async () => {
  const first = await conversation("deepl", "lock_after = 1");
  await first.c.post([userText("Hallo, ich brauche Hilfe")]);
  await sent(first.c, 1);
  await first.c.close({ keepDir: true });
  const flow = answeringFlow();
  const c = await startConversation({
    dir: first.c.dir,
    flows: flow.flows,
    endpointToml: `[endpoints.translation]\n${SETTINGS.deepl(fake.urlFor("deepl"))}\nretries = 0\nlock_after = 1`,
  });
  try {
    const before = fake.callsOf("deepl").length;
    await c.post([userText("Thanks")]);
    await sent(c, 1);
    expect((fake.callsOf("deepl")[before]!.body as { source_lang?: string }).source_lang).toBe("DE");
    expect(flow.inputs[0]!.language).toBe("de");
  } finally {
    await c.close();
  }
});

test("export shows the language and the cached translations; the erasure leaves none; retention purges expired cache rows (also with retention_days = 0)", async () => {
  let offset = 0;
  // retention_days = 0 keeps everything of the person; expired translations go all the same.
  const { c } = await conversation("deepl", "cache_hours = 1", {
    clock: { now: () => Date.now() + offset },
    endpointToml: "[endpoints.data_protection]\nretention_days = 0",
  });
  try {
    await c.post([userText("Hallo, ich brauche Hilfe")]);
    await c.post([userText("Danke", { psid: PSID_2 })]);
    await sent(c, 1);
    await sent(c, 1, PSID_2);
    const exported = await api(c, "GET", `/api/endpoints/support/users/${PSID}/export`);
    expect(exported.body.translation).toEqual([
      expect.objectContaining({ language: expect.objectContaining({ language: "de", inputs: 1 }), cached_translations: expect.any(Array) }),
    ]);
    expect(exported.body.translation[0].cached_translations.map((t: { kind: string }) => t.kind)).toEqual(["user", "bot", "bot", "bot"]);
    expect((await api(c, "DELETE", `/api/endpoints/support/users/${PSID}`)).status).toBe(200);
    expect(await rows(c, "SELECT user_id FROM translation_users")).toHaveLength(1);
    const left = await rows(c, "SELECT DISTINCT user_id FROM translation_cache");
    expect(left.map((r) => (r as unknown as { user_id: string }).user_id)).toEqual([PSID_2]);
    offset = 2 * 3_600_000;
    const purged = await c.app.retention.runOnce();
    expect(purged.support).toMatchObject({ translation_cache: 2, translation_users: 0 });
    expect(await rows(c, "SELECT key FROM translation_cache")).toHaveLength(0);
  } finally {
    await c.close();
  }
});

test("provider none with always_remove_markers: the markers go, nothing is asked", async () => {
  const flow = answeringFlow();
  const c = await startConversation({ flows: flow.flows, endpointToml: '[endpoints.translation]\nprovider = "none"\nalways_remove_markers = true' });
  try {
    const before = fake.calls.length;
    await c.post([userText("hello")]);
    const [reply] = await sent(c, 1);
    expect(messageTexts([reply!])).toEqual(["You wrote: hello. Thanks from Acme!"]);
    expect(flow.inputs[0]!.data.translation).toBeUndefined();
    expect(fake.calls.length).toBe(before);
  } finally {
    await c.close();
  }
});
