import { describe, expect, test } from "bun:test";
import { echoFlow } from "../../../src/flows/builtin-echo.ts";
import { validateFlowResult, type FlowResult } from "../../../src/flows/schema.ts";
import { convertOutput } from "../../../src/messenger/convert.ts";
import { validateSendBody } from "../../../src/simulator/messenger-limits.ts";
import { sampleInput } from "./support.ts";

const MENU = [
  { title: "Buttons", payload: "SHOW_BUTTONS" },
  { title: "Cards", payload: "SHOW_CARDS" },
  { title: "Hello", payload: "HELLO" },
];

/** The result is valid, converts without warnings, and Messenger would accept every message. */
function expectSendable(result: FlowResult): void {
  expect(validateFlowResult(result)).toEqual({ ok: true, result });
  for (const output of result.outputs ?? []) {
    const { messages, warnings } = convertOutput(output);
    expect(warnings).toEqual([]);
    for (const message of messages) expect(validateSendBody({ recipient: { id: "1" }, messaging_type: "RESPONSE", message })).toEqual({ ok: true });
  }
}

describe("builtin:echo", () => {
  test("echoes the text, with the menu as quick replies, and counts turns in the context", async () => {
    const result = await echoFlow(sampleInput({ text: "hi there", context: { lang: "en" } }));
    expect(result).toEqual({ context: { lang: "en", count: 1 }, outputs: [{ text: "You said: hi there", quick_replies: MENU }] });
    expectSendable(result);
  });

  test("the count goes on from the context", async () => {
    expect((await echoFlow(sampleInput({ context: { count: 41 } }))).context).toEqual({ count: 42 });
    expect((await echoFlow(sampleInput({ context: { count: "3" } }))).context).toEqual({ count: 4 });
  });

  test("SHOW_BUTTONS answers with three buttons", async () => {
    const result = await echoFlow(sampleInput({ text: "SHOW_BUTTONS", data: { payload: "SHOW_BUTTONS" } }));
    expect(result.outputs).toHaveLength(1);
    const output = result.outputs![0]!;
    expect(output.text).toBe("Here are some buttons.");
    expect(output.buttons!.map((b) => b.type)).toEqual(["postback", "postback", "web_url"]);
    expect(output.buttons!.map((b) => b.title)).toEqual(["Say hello", "Show cards", "Messenger docs"]);
    expectSendable(result);
    const [message] = convertOutput(output).messages;
    expect((message!.attachment as any).payload.template_type).toBe("button");
  });

  test("SHOW_CARDS answers with a carousel of three cards, then a text with the menu", async () => {
    const result = await echoFlow(sampleInput({ text: "SHOW_CARDS", data: { payload: "SHOW_CARDS" } }));
    expect(result.outputs).toHaveLength(2);
    expect(result.outputs![0]!.cards!.map((c) => c.title)).toEqual(["Card 1", "Card 2", "Card 3"]);
    expect(result.outputs![0]!.cards!.every((c) => c.buttons?.length === 1)).toBe(true);
    expect(result.outputs![1]).toEqual({ text: "Swipe to see them all.", quick_replies: MENU });
    expectSendable(result);
  });

  test("typing the word does not trigger the buttons; only the payload does", async () => {
    const result = await echoFlow(sampleInput({ text: "SHOW_BUTTONS" }));
    expect(result.outputs![0]!.text).toBe("You said: SHOW_BUTTONS");
  });

  test("HELLO and an empty text greet", async () => {
    for (const input of [sampleInput({ text: "HELLO", data: { payload: "HELLO" } }), sampleInput({ text: "" })]) {
      const result = await echoFlow(input);
      expect(result.outputs).toEqual([{ text: "Hello! Send me anything and I will echo it.", quick_replies: MENU }]);
    }
  });

  test("another payload is named", async () => {
    const result = await echoFlow(sampleInput({ text: "GET_STARTED", data: { payload: "GET_STARTED" } }));
    expect(result.outputs).toEqual([{ text: "You tapped GET_STARTED.", quick_replies: MENU }]);
  });

  test("attachments are described, with a or an", async () => {
    const result = await echoFlow(
      sampleInput({
        text: "",
        data: { attachments: [{ type: "image", url: "https://cdn.example.test/a.jpg" }, { type: "audio" }, { type: "location" }] },
      }),
    );
    expect(result.outputs).toEqual([{ text: "You sent an image and an audio and a location.", quick_replies: MENU }]);
    expectSendable(result);
  });

  test("a very long text is still sendable (the converter splits it)", async () => {
    const result = await echoFlow(sampleInput({ text: "word ".repeat(1000) }));
    expectSendable(result);
    expect(convertOutput(result.outputs![0]!).messages.length).toBeGreaterThan(1);
  });
});
