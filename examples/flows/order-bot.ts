/**
 * A script flow: `kind = "script"`, `module = "flows/order-bot.ts"`. The default export gets the
 * input of docs/flows.md and returns a result: outputs to send, and the context to keep for the next
 * input of this session. It runs inside the server, so keep it quick and let `ctx.signal` cancel
 * any call you make (the turn is abandoned after the flow's timeout_ms, 30 s by default).
 */
interface Input {
  text: string;
  data: { payload?: string; attachments?: { type: string; url?: string }[] };
  context: { step?: string; size?: string };
}

export default async function orderBot(input: Input, ctx: { signal: AbortSignal }) {
  const { context } = input;
  if (input.data.payload === "ORDER" || /order/i.test(input.text)) {
    return {
      context: { step: "size" },
      outputs: [
        {
          text: "Which size?",
          quick_replies: [
            { title: "Small", payload: "SIZE_S" },
            { title: "Large", payload: "SIZE_L" },
          ],
        },
      ],
    };
  }
  if (context.step === "size" && input.data.payload?.startsWith("SIZE_")) {
    const size = input.data.payload === "SIZE_S" ? "small" : "large";
    // Any I/O should honour ctx.signal, e.g. fetch(url, { signal: ctx.signal }).
    void ctx.signal;
    return {
      context: { step: "done", size },
      outputs: [
        { text: `One ${size} coffee, coming up.` },
        { cards: [{ title: `Coffee (${size})`, subtitle: "Ready in 5 minutes", buttons: [{ type: "postback", title: "Cancel", payload: "CANCEL" }] }] },
      ],
    };
  }
  return {
    outputs: [{ text: "Hi! I take coffee orders.", buttons: [{ type: "postback", title: "Order", payload: "ORDER" }] }],
  };
}
