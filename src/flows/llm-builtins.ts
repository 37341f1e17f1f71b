/**
 * The built-in tools of an `llm` flow (`builtin_tools`, docs/flows.md "Built-in tools"): answers
 * in Messenger's own shapes (quick replies, buttons, cards, an image), `handover` to people,
 * `end_session` and `remember`. They run inside the endpoint: a call adds an output of the flow
 * protocol (src/flows/schema.ts, converted for Messenger by src/messenger/convert.ts within its
 * limits) or an effect on the turn's result. Each tool's arguments are one TypeBox schema: it is
 * the JSON Schema the model reads and the check its arguments must pass.
 */
import { type Static, type TObject, Type } from "@sinclair/typebox";
import type { LlmBuiltinTool } from "../config/llm-names.ts";
import { checker, firstProblem } from "../core/checks.ts";
import type { Button, Card, Output } from "./schema.ts";

/** Facts kept per scope; the oldest go first. */
export const MAX_FACTS = 20;
export const MAX_FACT_CHARS = 500;

const LinkOrReply = Type.Object({
  title: Type.String({ description: "The button's label (at most 20 characters are shown)" }),
  url: Type.Optional(Type.String({ description: "An https URL the button opens; without it, tapping sends the title back as the user's message" })),
});

const SCHEMAS = {
  offer_quick_replies: Type.Object({
    text: Type.String({ description: "The message the choices are shown under" }),
    options: Type.Array(Type.String(), {
      minItems: 1,
      description: "At most 13 short choices (20 characters each); the one tapped comes back as the user's message",
    }),
  }),
  offer_buttons: Type.Object({
    text: Type.String({ description: "The message above the buttons (at most 640 characters)" }),
    buttons: Type.Array(LinkOrReply, { minItems: 1, description: "Up to 3 buttons" }),
  }),
  send_cards: Type.Object({
    text: Type.Optional(Type.String({ description: "A message sent before the cards" })),
    cards: Type.Array(
      Type.Object({
        title: Type.String(),
        subtitle: Type.Optional(Type.String()),
        image_url: Type.Optional(Type.String({ description: "An https URL of an image" })),
        url: Type.Optional(Type.String({ description: "An https URL opened when the card is tapped" })),
        buttons: Type.Optional(Type.Array(LinkOrReply, { description: "Up to 3 buttons" })),
      }),
      { minItems: 1, description: "Up to 10 cards, shown side by side" },
    ),
  }),
  send_image: Type.Object({
    url: Type.String({ description: "The https URL of the image" }),
    text: Type.Optional(Type.String({ description: "A message sent before the image" })),
  }),
  handover: Type.Object({
    reason: Type.String({ description: "Why a person should take over, for the person who does" }),
    message: Type.Optional(Type.String({ description: "What to tell the user before a person takes over" })),
  }),
  end_session: Type.Object({
    message: Type.Optional(Type.String({ description: "A last message to the user" })),
  }),
  remember: Type.Object({
    fact: Type.String({ description: "The fact, in one short sentence" }),
    about: Type.Optional(
      Type.Union([Type.Literal("person"), Type.Literal("conversation")], {
        description: '"person" (default): kept for later conversations with this person; "conversation": for this conversation only',
      }),
    ),
  }),
} satisfies Record<LlmBuiltinTool, TObject>;

const DESCRIPTIONS: Record<LlmBuiltinTool, string> = {
  offer_quick_replies: "Send a message with quick reply choices the user can tap instead of typing. Use it for short, closed questions.",
  offer_buttons: "Send a message with up to 3 buttons: a link to open, or a reply the user can tap.",
  send_cards: "Send one card, or several side by side (a carousel): products, articles, places, each with a title, subtitle, image and buttons.",
  send_image: "Send an image by its URL.",
  handover:
    "Hand the conversation to a person (the team). Use it when the user asks for a person, or when you cannot help. After it you no longer answer this user until the team hands the conversation back.",
  end_session: "End this conversation when the user's matter is settled: the next message starts a new conversation without this one's history.",
  remember: "Remember a fact the user told you that will matter later (a preference, an order number, a name). It is given back to you in later turns.",
};

export function builtinDefinitions(names: readonly LlmBuiltinTool[]) {
  return names.map((name) => ({ type: "function" as const, function: { name, description: DESCRIPTIONS[name], parameters: SCHEMAS[name] } }));
}

/** What the built-in calls of one turn produced, in the order they were called. */
export class BuiltinEffects {
  readonly outputs: Output[] = [];
  handover: { metadata: string } | null = null;
  endSession = false;
  /** The facts, old and new; `changed` when a call added one. */
  readonly facts: { person: string[]; conversation: string[]; changed: { person: boolean; conversation: boolean } };

  constructor(
    person: readonly string[],
    conversation: readonly string[],
    /** False without a contact profile: facts about the person are kept for the conversation only. */
    readonly personScope: boolean,
  ) {
    this.facts = { person: [...person], conversation: [...conversation], changed: { person: false, conversation: false } };
  }

  /**
   * Applies one call; the content of its `role: "tool"` message, and whether it ends the turn
   * (when the model's answer has no other kind of call). `deferred`: other tools' results are
   * given back first, so the model will answer once more.
   */
  apply(name: LlmBuiltinTool, rawArguments: string, deferred: boolean): { content: string; outcome: "ok" | "invalid_arguments"; final: boolean } {
    let args: unknown;
    try {
      args = JSON.parse(rawArguments || "{}");
    } catch {
      return { content: error("the arguments are not JSON: call the tool again with a JSON object"), outcome: "invalid_arguments", final: false };
    }
    const schema = SCHEMAS[name];
    if (!checker(schema).Check(args)) {
      const problem = firstProblem(schema, args);
      const where = problem?.path ? ` at ${problem.path}` : "";
      return { content: error(`invalid arguments${where}: ${problem?.message ?? "unexpected shape"}`), outcome: "invalid_arguments", final: false };
    }
    const shown = JSON.stringify({ ok: true, note: deferred ? "shown to the user after your answer" : "shown to the user" });
    switch (name) {
      case "offer_quick_replies": {
        const a = args as Static<(typeof SCHEMAS)["offer_quick_replies"]>;
        this.outputs.push({ text: a.text, quick_replies: a.options.map((title) => ({ title, payload: title })) });
        return { content: shown, outcome: "ok", final: true };
      }
      case "offer_buttons": {
        const a = args as Static<(typeof SCHEMAS)["offer_buttons"]>;
        this.outputs.push({ text: a.text, buttons: a.buttons.map(button) });
        return { content: shown, outcome: "ok", final: true };
      }
      case "send_cards": {
        const a = args as Static<(typeof SCHEMAS)["send_cards"]>;
        if (a.text) this.outputs.push({ text: a.text });
        this.outputs.push({ cards: a.cards.map(({ buttons, ...c }): Card => (buttons ? { ...c, buttons: buttons.map(button) } : c)) });
        return { content: shown, outcome: "ok", final: true };
      }
      case "send_image": {
        const a = args as Static<(typeof SCHEMAS)["send_image"]>;
        if (a.text) this.outputs.push({ text: a.text });
        this.outputs.push({ image: a.url });
        return { content: shown, outcome: "ok", final: true };
      }
      case "handover": {
        const a = args as Static<(typeof SCHEMAS)["handover"]>;
        if (a.message) this.outputs.push({ text: a.message });
        this.handover ??= { metadata: a.reason.slice(0, 1000) };
        return { content: JSON.stringify({ ok: true, note: "a person takes over after this turn" }), outcome: "ok", final: true };
      }
      case "end_session": {
        const a = args as Static<(typeof SCHEMAS)["end_session"]>;
        if (a.message) this.outputs.push({ text: a.message });
        this.endSession = true;
        return { content: JSON.stringify({ ok: true, note: "the conversation ends after this turn" }), outcome: "ok", final: true };
      }
      case "remember": {
        const a = args as Static<(typeof SCHEMAS)["remember"]>;
        const scope = a.about === "conversation" || !this.personScope ? "conversation" : "person";
        const fact = a.fact.trim().slice(0, MAX_FACT_CHARS);
        const list = this.facts[scope];
        if (fact && !list.includes(fact)) {
          list.push(fact);
          list.splice(0, Math.max(0, list.length - MAX_FACTS));
          this.facts.changed[scope] = true;
        }
        const note = scope === "person" || a.about === "conversation" ? "remembered" : "remembered for this conversation only (no contact profile)";
        return { content: JSON.stringify({ ok: true, note }), outcome: "ok", final: false };
      }
    }
  }
}

function button(b: Static<typeof LinkOrReply>): Button {
  return b.url ? { type: "web_url", title: b.title, url: b.url } : { type: "postback", title: b.title, payload: b.title };
}

function error(message: string): string {
  return JSON.stringify({ error: message });
}

/** Facts stored under a key (`context.memory`, `contact.memories`): the strings of an array. */
export function readFacts(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((f): f is string => typeof f === "string").slice(-MAX_FACTS) : [];
}

/** Quick replies show on the last message only: those of an earlier output move to the last. */
export function quickRepliesLast(outputs: Output[]): Output[] {
  const moved = outputs.flatMap((o) => o.quick_replies ?? []);
  if (moved.length === 0) return outputs;
  const result: Output[] = outputs.map(({ quick_replies: _, ...rest }) => rest);
  result[result.length - 1] = { ...result[result.length - 1]!, quick_replies: moved };
  return result;
}

/** An output as the history keeps it for the model: its text, and what came with it in brackets. */
export function describeOutput(o: Output): string {
  const parts = o.text ? [o.text] : [];
  if (o.quick_replies) parts.push(`[quick replies: ${o.quick_replies.map((q) => ("title" in q ? q.title : q.type)).join(" | ")}]`);
  if (o.buttons) parts.push(`[buttons: ${o.buttons.map((b) => b.title).join(" | ")}]`);
  if (o.cards) parts.push(`[cards: ${o.cards.map((c) => c.title).join(" | ")}]`);
  if (o.image) parts.push(`[image: ${o.image}]`);
  return parts.join("\n");
}
