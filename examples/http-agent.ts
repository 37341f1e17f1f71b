/**
 * A minimal agent for `kind = "http"`: run it with `npx bun examples/http-agent.ts` and set
 *
 *   [flows.support]
 *   kind = "http"
 *   url = "http://127.0.0.1:5005/agent"
 *
 * messenger-endpoint POSTs the flow input (docs/flows.md) as JSON; the JSON you answer is the result.
 */
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 5005),
  async fetch(request) {
    if (request.method !== "POST" || new URL(request.url).pathname !== "/agent") return new Response("not found", { status: 404 });
    const input = (await request.json()) as { text: string; context: { turns?: number } };
    // "bye" ends the session: the next message starts a new one, with an empty context.
    if (/^bye\b/i.test(input.text)) return Response.json({ outputs: [{ text: "Bye! Write again any time." }], end_session: true });
    const turns = (input.context.turns ?? 0) + 1;
    return Response.json({
      outputs: [{ text: `Turn ${turns}: you wrote "${input.text}".`, quick_replies: [{ title: "Again", payload: "AGAIN" }] }],
      context: { turns },
    });
  },
});
console.log(`agent listening on http://127.0.0.1:${server.port}/agent`);
