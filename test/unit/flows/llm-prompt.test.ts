/** The llm flow's prompt, history and message splitting (src/flows/llm-prompt.ts) and their settings' checks. */
import { describe, expect, test } from "bun:test";
import { unknownPlaceholders } from "../../../src/config/llm-names.ts";
import { boundHistory, estimateTokens, renderPrompt, splitParagraphs, utcOffsetHours } from "../../../src/flows/llm-prompt.ts";
import { sampleInput } from "./support.ts";

// 2026-12-01 23:30 UTC: already Wednesday 2 December east of UTC+0:30, still Tuesday west of it.
const NOW = Date.UTC(2026, 11, 1, 23, 30);

describe("system_prompt placeholders", () => {
  const person = sampleInput({
    endpoint_id: "support",
    language: "de",
    data: { profile: { id: "1", first_name: "Amelie", last_name: "Laurent", locale: "de_DE", timezone: 2 } },
    contact: { first_name: "Old", plan: "gold", address: { city: "Lyon" } },
    context: { step: "size" },
  });

  test("the person, the date and time in the user's timezone, the endpoint", () => {
    const prompt = "Hi {{first_name}} {{ last_name }} ({{locale}}, {{language}}); {{date}} {{time}} {{timezone}} on {{endpoint}} / {{page_id}}";
    expect(renderPrompt(prompt, person, NOW)).toBe(`Hi Amelie Laurent (de_DE, de); Wednesday, 2 December 2026 01:30 UTC+2 on support / ${person.page_id}`);
  });

  test("a half-hour timezone, a negative one, and none (UTC)", () => {
    const at = (timezone: unknown) => renderPrompt("{{date}} {{time}} {{timezone}}", sampleInput({ data: { profile: { timezone } } }), NOW);
    expect(at(5.5)).toBe("Wednesday, 2 December 2026 05:00 UTC+5:30");
    expect(at(-5)).toBe("Tuesday, 1 December 2026 18:30 UTC-5");
    expect(at(undefined)).toBe("Tuesday, 1 December 2026 23:30 UTC");
    expect(at("garbage")).toBe("Tuesday, 1 December 2026 23:30 UTC");
    expect(at(99)).toBe("Tuesday, 1 December 2026 23:30 UTC");
    // The contact's copy of the timezone serves when the profile has none.
    expect(utcOffsetHours(sampleInput({ contact: { timezone: "-3" } }))).toBe(-3);
  });

  test("contact, profile and context fields; a field that is not set is empty; objects as JSON", () => {
    const prompt = "{{contact.plan}}|{{contact.address.city}}|{{contact.address}}|{{profile.locale}}|{{context.step}}|{{contact.missing}}|";
    expect(renderPrompt(prompt, person, NOW)).toBe('gold|Lyon|{"city":"Lyon"}|de_DE|size||');
  });

  test("without a profile the contact's first name and the endpoint's locale serve; a prompt without placeholders is as it is", () => {
    const input = sampleInput({ data: {}, contact: { first_name: "Ada" }, locale: "en_GB" });
    expect(renderPrompt("{{first_name}} {{locale}}", input, NOW)).toBe("Ada en_GB");
    expect(renderPrompt("Plain {text}.", input, NOW)).toBe("Plain {text}.");
  });

  test("the settings check names unknown placeholders", () => {
    expect(unknownPlaceholders("{{first_name}} {{frist_name}} {{contact.plan}} {{contact.}} {{user.id}} {{frist_name}}")).toEqual([
      "frist_name",
      "contact.",
      "user.id",
    ]);
  });
});

describe("history bounds", () => {
  const turn = (i: number, size = 10) => [
    { role: "user" as const, content: `q${i} ${"x".repeat(size)}` },
    { role: "assistant" as const, content: `a${i} ${"y".repeat(size)}` },
  ];
  const five = [1, 2, 3, 4, 5].flatMap((i) => turn(i, 400));

  test("by turns, then by the token budget: the oldest turns go first", () => {
    expect(boundHistory(five, 2, 1_000_000)).toEqual(five.slice(-4));
    const perMessage = estimateTokens(five[0]!.content);
    expect(perMessage).toBe(Math.ceil(403 / 4) + 4);
    expect(boundHistory(five, 20, perMessage * 4)).toEqual(five.slice(-4));
    expect(boundHistory(five, 20, perMessage * 4 - 1)).toEqual(five.slice(-2));
    expect(boundHistory(five, 20, 0)).toEqual([]);
  });

  test("a history cut by the budget never starts with an answer", () => {
    const perMessage = estimateTokens(five[0]!.content);
    expect(boundHistory(five, 20, perMessage * 3)).toEqual(five.slice(-2));
  });
});

describe("answers as messages", () => {
  test("paragraphs are joined while they fit, split at blank lines otherwise", () => {
    expect(splitParagraphs("One.\n\nTwo.\n \nThree.", 640)).toEqual(["One.\n\nTwo.\n\nThree."]);
    expect(splitParagraphs("One.\n\nTwo.\n\nThree.", 11)).toEqual(["One.\n\nTwo.", "Three."]);
    const long = "z".repeat(700);
    expect(splitParagraphs(`Short.\n\n${long}\n\nEnd.`, 640)).toEqual(["Short.", long, "End."]);
    expect(splitParagraphs("  \n\n  ", 640)).toEqual([]);
    expect(splitParagraphs("Line one\nline two", 5)).toEqual(["Line one\nline two"]);
  });
});
