import { describe, expect, test } from "bun:test";
import { validateFlowResult, type FlowResult } from "../../../src/flows/schema.ts";

const problemOf = (value: unknown): string => {
  const verdict = validateFlowResult(value);
  if (verdict.ok) throw new Error(`expected ${JSON.stringify(value)} to be rejected`);
  return verdict.problem;
};

describe("validateFlowResult: accepted", () => {
  test("null and undefined are an empty result", () => {
    expect(validateFlowResult(null)).toEqual({ ok: true, result: {} });
    expect(validateFlowResult(undefined)).toEqual({ ok: true, result: {} });
  });

  test("an empty object, and each part alone", () => {
    for (const value of [
      {},
      { outputs: [] },
      { context: {} },
      { handover: {} },
      { handover: { target: "page_inbox", metadata: "m" } },
      { handover: { target: "263902037430900" } },
      { end_session: true },
      { end_session: false },
      { contact: {} },
      { contact: { plan: "gold", visits: 3, prefs: { lang: "fr" }, old: null } },
    ]) {
      expect(validateFlowResult(value)).toEqual({ ok: true, result: value });
    }
  });

  test("every kind of output of the flow protocol (docs/flows.md)", () => {
    const result: FlowResult = {
      outputs: [
        {
          text: "Pick one",
          quick_replies: [
            { title: "Yes", payload: "YES" },
            { type: "text", title: "No", image_url: "https://img.example.test/no.png" },
            { type: "user_email" },
            { type: "user_phone_number" },
          ],
          buttons: [
            { type: "postback", title: "Order", payload: "ORDER" },
            { type: "web_url", title: "Site", url: "https://shop.example.test/", webview_height_ratio: "compact" },
            { type: "phone_number", title: "Call", payload: "+15551234567" },
          ],
        },
        { cards: [{ title: "T", subtitle: "S", image_url: "https://img.example.test/c.png", url: "https://shop.example.test/c", buttons: [] }] },
        {
          image: "https://cdn.example.test/i.png",
          audio: "https://cdn.example.test/a.mp3",
          video: "https://cdn.example.test/v.mp4",
          file: "https://cdn.example.test/f.pdf",
        },
        { messenger: { attachment: { type: "template", payload: { template_type: "receipt" } } } },
      ],
      context: { step: 3, nested: { list: [1, 2] } },
      handover: { target: "page_inbox" },
    };
    const verdict = validateFlowResult(result);
    expect(verdict).toEqual({ ok: true, result });
    if (verdict.ok) expect(verdict.result).toBe(result);
  });

  test("unknown extra fields are tolerated", () => {
    expect(validateFlowResult({ outputs: [{ text: "x", tts: "x" }], debug: true }).ok).toBe(true);
  });
});

describe("validateFlowResult: rejected, with the path of the first problem", () => {
  test("a result that is not an object", () => {
    for (const value of [[], "text", 42, true]) expect(problemOf(value)).toBe("invalid flow result at /: Expected object");
  });

  test("outputs that are not a list; an output text that is not a string", () => {
    expect(problemOf({ outputs: "nope" })).toBe("invalid flow result at /outputs: Expected array");
    expect(problemOf({ outputs: { text: "hi" } })).toContain("at /outputs:");
    expect(problemOf({ outputs: [{ text: "ok" }, { text: 5 }] })).toBe("invalid flow result at /outputs/1/text: Expected string");
  });

  test("a button without its payload: the path is outputs[0].buttons[0]", () => {
    const problem = problemOf({ outputs: [{ text: "x", buttons: [{ type: "postback", title: "A" }] }] });
    expect(problem).toStartWith("invalid flow result at /outputs/0/buttons/0");
  });

  test("a button of an unknown type or with a bad webview_height_ratio", () => {
    expect(problemOf({ outputs: [{ buttons: [{ type: "call", title: "A", payload: "P" }] }] })).toContain("/outputs/0/buttons/0");
    expect(problemOf({ outputs: [{ buttons: [{ type: "web_url", title: "t", url: "https://x.test", webview_height_ratio: "huge" }] }] })).toContain(
      "/outputs/0/buttons/0",
    );
  });

  test("a quick reply without title (and not an email / phone kind)", () => {
    expect(problemOf({ outputs: [{ text: "x", quick_replies: [{ title: "ok" }, { payload: "X" }] }] })).toContain("/outputs/0/quick_replies/1");
  });

  test("a card without title", () => {
    expect(problemOf({ outputs: [{ cards: [{ title: "ok" }, { subtitle: "s" }] }] })).toBe(
      "invalid flow result at /outputs/0/cards/1/title: Expected required property",
    );
  });

  test("a card button without payload", () => {
    expect(problemOf({ outputs: [{ cards: [{ title: "T", buttons: [{ type: "phone_number", title: "Call" }] }] }] })).toContain("/outputs/0/cards/0/buttons/0");
  });

  test("media and messenger of the wrong type", () => {
    expect(problemOf({ outputs: [{ image: { url: "https://x.test/i.png" } }] })).toContain("/outputs/0/image");
    expect(problemOf({ outputs: [{ messenger: "raw text" }] })).toContain("/outputs/0/messenger");
  });

  test("a context that is not an object; a handover target that is not a string", () => {
    expect(problemOf({ context: [] })).toBe("invalid flow result at /context: Expected object");
    expect(problemOf({ context: "state" })).toContain("/context");
    expect(problemOf({ handover: { target: 5 } })).toBe("invalid flow result at /handover/target: Expected string");
  });

  test("end_session that is not a boolean; contact that is not an object", () => {
    expect(problemOf({ end_session: "yes" })).toBe("invalid flow result at /end_session: Expected boolean");
    expect(problemOf({ end_session: 1 })).toContain("/end_session");
    expect(problemOf({ contact: [] })).toBe("invalid flow result at /contact: Expected object");
    expect(problemOf({ contact: "gold" })).toContain("/contact");
    expect(problemOf({ contact: null })).toContain("/contact");
  });

  test("only the first problem is reported", () => {
    const problem = problemOf({ outputs: [{ text: 1 }, { text: 2 }], context: [] });
    expect(problem).toContain("/outputs/0/text");
    expect(problem).not.toContain("/outputs/1");
    expect(problem).not.toContain("/context");
  });
});
