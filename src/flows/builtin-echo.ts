/**
 * `builtin:echo`, the demo agent shipped in the binary. It repeats what it gets and shows what
 * the product can render: quick replies on every answer, "Buttons" answers with a button
 * template, "Cards" with a carousel, attachments are described; with an NLU connector it names
 * the intent it was given, and with translation the language the user wrote in.
 */
import type { FlowInput, FlowResult, Output } from "./schema.ts";

const MENU = [
  { title: "Buttons", payload: "SHOW_BUTTONS" },
  { title: "Cards", payload: "SHOW_CARDS" },
  { title: "Hello", payload: "HELLO" },
];

export async function echoFlow(input: FlowInput): Promise<FlowResult> {
  const count = Number(input.context.count ?? 0) + 1;
  const context = { ...input.context, count };
  const payload = input.data.payload;
  // Handover (docs/handover.md): "Talk to a person" in the demo's menu passes the thread to the Page Inbox.
  const handover = input.handover as { status?: string } | null;
  if (input.source === "handover") {
    return { context, outputs: [{ text: `I'm back (the handover ended: ${handover?.status ?? "completed"}). How can I help?`, quick_replies: MENU }] };
  }
  if (payload === "HUMAN") {
    return {
      context,
      outputs: [{ text: 'I\'m passing you to a person. (In the simulator, "Mark done" plays the person finishing.)' }],
      handover: { target: "page_inbox", metadata: "asked for a person" },
    };
  }
  if (payload === "SHOW_BUTTONS") {
    return {
      context,
      outputs: [
        {
          text: "Here are some buttons.",
          buttons: [
            { type: "postback", title: "Say hello", payload: "HELLO" },
            { type: "postback", title: "Show cards", payload: "SHOW_CARDS" },
            { type: "web_url", title: "Messenger docs", url: "https://developers.facebook.com/docs/messenger-platform" },
          ],
        },
      ],
    };
  }
  if (payload === "SHOW_CARDS") {
    const card = (n: number) => ({
      title: `Card ${n}`,
      subtitle: `This is card number ${n} of a carousel.`,
      buttons: [{ type: "postback" as const, title: `Pick ${n}`, payload: `PICK_${n}` }],
    });
    return { context, outputs: [{ cards: [card(1), card(2), card(3)] }, { text: "Swipe to see them all.", quick_replies: MENU }] };
  }
  const outputs: Output[] = [];
  const attachments = input.data.attachments ?? [];
  if (attachments.length > 0) {
    outputs.push({ text: `You sent ${attachments.map((a) => `a${/^[aeiou]/.test(a.type) ? "n" : ""} ${a.type}`).join(" and ")}.` });
  } else if (payload === "HELLO" || !input.text) {
    outputs.push({ text: "Hello! Send me anything and I will echo it." });
  } else if (payload) {
    outputs.push({ text: `You tapped ${payload}.` });
  } else {
    outputs.push({ text: `You said: ${input.text}` });
    // What the endpoint understood before the flow ran (docs/nlu.md, docs/translation.md).
    const nlu = input.nlu as { intent?: unknown } | null;
    const translation = input.data.translation as { user_language?: unknown; original_text?: unknown } | undefined;
    const notes: string[] = [];
    // With translation on, **…** keeps a name as it is (the no-translation marker, removed on the way out).
    const name = (s: string) => (translation ? `**${s}**` : s);
    if (typeof nlu?.intent === "string") notes.push(`I understood: ${name(nlu.intent)}.`);
    if (typeof translation?.user_language === "string" && translation.original_text !== input.text)
      notes.push(`(You wrote in ${name(translation.user_language)}.)`);
    if (notes.length > 0) outputs.push({ text: notes.join(" ") });
  }
  outputs[outputs.length - 1]!.quick_replies = MENU;
  return { context, outputs };
}
