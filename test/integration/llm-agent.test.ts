/**
 * The llm flow as a whole agent, end to end: signed webhooks → the flow asks the stand-in model
 * (src/simulator/fake-llm/), whose scripted answers call the built-in tools → Messenger's shapes
 * reach the fake Graph API, and the model's handover passes the thread after its last message.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { PAGE_ID, PSID } from "../helpers/config.ts";
import { messageTexts, rows, startConversation, until, userText, type Conversation } from "../helpers/conversation.ts";
import { PAGE_INBOX_APP_ID } from "../../src/handover/threads.ts";
import { FakeLlm, lastUserText } from "../../src/simulator/fake-llm/fake-llm.ts";

const model = FakeLlm.start();
const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  model.reset();
});
afterAll(() => model.stop());

const FLOW = `kind = "llm"
url = "${model.url}"
model = "gpt-test"
system_prompt = "You are the assistant of Example Shop, talking with {{first_name}} on {{date}}."
builtin_tools = ["offer_quick_replies", "offer_buttons", "send_cards", "send_image", "handover", "end_session", "remember"]
`;

async function conversation(): Promise<Conversation> {
  const c = await startConversation({ flow: FLOW, echoes: true, endpointToml: "[endpoints.handover]\n" });
  open.push(c);
  return c;
}

test("quick replies and buttons from the model reach the Send API in Messenger's shapes, within its limits", async () => {
  const options = Array.from({ length: 15 }, (_, i) => `Option number ${i + 1} with a long title`);
  model.respond = (r) => {
    const said = lastUserText(r);
    if (said === "menu") {
      return {
        tool_calls: [
          {
            name: "offer_buttons",
            arguments: { text: "What would you like?", buttons: [{ title: "Track my order" }, { title: "Shop", url: "https://shop.example.test" }] },
          },
        ],
      };
    }
    if (said === "sizes") return { tool_calls: [{ name: "offer_quick_replies", arguments: { text: "Which one?", options } }] };
    return { content: `You chose: ${said}` };
  };
  const c = await conversation();
  c.graph.setUser(PAGE_ID, PSID, {
    profile: { first_name: "Amelie", last_name: "Laurent", timezone: 14 },
    permissions: ["pages_user_locale", "pages_user_timezone", "pages_user_gender"],
  });
  expect(await c.post([userText("menu")])).toBe(200);
  const [buttons] = await c.graph.waitForSends(1, { recipientId: PSID });
  expect(buttons!.message!.attachment).toEqual({
    type: "template",
    payload: {
      template_type: "button",
      text: "What would you like?",
      buttons: [
        { type: "postback", title: "Track my order", payload: "Track my order" },
        { type: "web_url", title: "Shop", url: "https://shop.example.test" },
      ],
    },
  });
  // The system prompt had the person in it (the Facebook profile) and the date where they are (UTC+14).
  const where = new Date(Date.now() + 14 * 3_600_000);
  const day = `${where.getUTCDate()} ${where.toLocaleString("en", { month: "long", timeZone: "UTC" })} ${where.getUTCFullYear()}`;
  expect(String(model.requests[0]!.body.messages[0]!.content)).toEndWith(
    `talking with Amelie on ${where.toLocaleString("en", { weekday: "long", timeZone: "UTC" })}, ${day}.`,
  );

  // The user taps the postback button: its payload comes back as the text the model reads.
  expect(
    await c.post([
      { sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: Date.now(), postback: { title: "Track my order", payload: "Track my order" } },
    ]),
  ).toBe(200);
  await c.graph.waitForSends(2, { recipientId: PSID });
  expect(messageTexts(c.sends(PSID))[1]).toBe("You chose: Track my order");

  expect(await c.post([userText("sizes")])).toBe(200);
  const sends = await c.graph.waitForSends(3, { recipientId: PSID });
  const quick = sends[2]!.message!;
  expect(quick.text).toBe("Which one?");
  expect(quick.quick_replies).toHaveLength(13);
  expect(quick.quick_replies![0]).toMatchObject({ content_type: "text", payload: options[0] });
  for (const q of quick.quick_replies!) expect(q.title!.length).toBeLessThanOrEqual(20);
  // The model read its earlier turn: the buttons it offered are in the history.
  expect(model.requests.at(-1)!.body.messages.some((m) => String(m.content).includes("[buttons: Track my order | Shop]"))).toBe(true);
});

test("the model's handover: its message is sent, then pass_thread_control with its reason; the thread comes back to the model", async () => {
  model.respond = (r) => {
    if (lastUserText(r) === "I want a person") {
      return { tool_calls: [{ name: "handover", arguments: { reason: "asks for a person", message: "A colleague will take over." } }] };
    }
    return { content: `Welcome back (${lastUserText(r)})` };
  };
  const c = await conversation();
  expect(await c.post([userText("I want a person")])).toBe(200);
  const [pass] = await c.graph.waitForCalls((call) => call.path.endsWith("/pass_thread_control"));
  const told = c.sends(PSID).find((s) => s.message?.text === "A colleague will take over.")!;
  expect(told.seq).toBeLessThan(pass!.seq);
  expect(pass!.body).toMatchObject({ recipient: { id: PSID }, target_app_id: PAGE_INBOX_APP_ID, metadata: "asks for a person" });
  expect(model.requests).toHaveLength(1);

  // A person marks the conversation done (once our side has recorded the handover, as a person
  // could not answer sooner): the model's turn tells it the conversation came back.
  await until(async () => (await rows(c, "SELECT state FROM threads"))[0]?.state === "handover");
  c.graph.inboxDone(PAGE_ID, PSID, "refund made");
  await until(() => messageTexts(c.sends(PSID)).length >= 2);
  expect(messageTexts(c.sends(PSID))[1]).toBe('Welcome back ([the conversation came back to you from the team: completed, "refund made"])');
});

test("remember and end_session: a fact about the person outlives the session the model ended; the conversation's own memory does not", async () => {
  model.respond = (r) => {
    const said = lastUserText(r);
    const answered = r.body.messages.at(-1)!.role === "tool";
    if (answered) return { content: "Noted." };
    if (said === "I wear size M, and today I shop for my brother") {
      return {
        tool_calls: [
          { name: "remember", arguments: { fact: "Wears size M" } },
          { name: "remember", arguments: { fact: "Shops for the brother today", about: "conversation" } },
        ],
      };
    }
    if (said === "bye") return { tool_calls: [{ name: "end_session", arguments: { message: "Goodbye!" } }] };
    return { content: "Hello again." };
  };
  const c = await conversation();
  for (const [i, text] of ["I wear size M, and today I shop for my brother", "bye", "hi"].entries()) {
    expect(await c.post([userText(text)])).toBe(200);
    await c.graph.waitForSends(i + 1, { recipientId: PSID });
  }
  expect(messageTexts(c.sends(PSID))).toEqual(["Noted.", "Goodbye!", "Hello again."]);
  // Turn 2 still had both facts; turn 3 (a new session) has the person's fact, no history and not the conversation's fact.
  const system = (i: number) => String(model.requests[i]!.body.messages[0]!.content);
  expect(system(2)).toContain("- Wears size M");
  expect(system(2)).toContain("- Shops for the brother today");
  const last = model.requests.at(-1)!.body.messages;
  expect(last[0]!.content).toContain("What you remembered about this person earlier:\n- Wears size M");
  expect(String(last[0]!.content)).not.toContain("brother");
  expect(last.slice(1)).toEqual([{ role: "user", content: "hi" }]);

  // What the model used, per endpoint and flow: in /metrics at once, in the analytics with each turn.
  const prompt = model.requests.reduce((sum, r) => sum + Math.ceil(JSON.stringify(r.body.messages).length / 4), 0);
  expect(c.app.metrics.render()).toContain(`messenger_llm_tokens_total{endpoint="support",flow="agent",kind="prompt"} ${prompt}`);
  await until(async () => (await rows(c, "SELECT prompt_tokens FROM analytics_tokens_daily"))[0]?.prompt_tokens === prompt);
  const [row] = await rows(c, "SELECT endpoint_id, flow FROM analytics_tokens_daily");
  expect([row!.endpoint_id, row!.flow]).toEqual(["support", "agent"]);
});
