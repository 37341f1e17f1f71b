/** The simulator page's event stream (`GET /simulator/api/events`), as server-sent events. */
import type { Simulator, SimulatorEvent } from "./simulator.ts";

/**
 * A `text/event-stream` response: `start` subscribes and returns its unsubscribe; a comment every
 * 15 s keeps proxies from closing it. The simulator tracks it, so that shutdown ends it (an open
 * browser tab must not hold the server up), as does the client going away.
 */
export function eventStream(signal: AbortSignal, simulator: Simulator, start: (push: (event: SimulatorEvent) => void) => () => void): Response {
  const encoder = new TextEncoder();
  let stop = () => {};
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (chunk: string) => {
        try {
          controller.enqueue(encoder.encode(chunk));
        } catch {
          stop();
        }
      };
      const unsubscribe = start((event) => send(`data: ${JSON.stringify(event)}\n\n`));
      const keepAlive = setInterval(() => send(": keep-alive\n\n"), 15_000);
      let untrack = () => {};
      stop = () => {
        untrack();
        clearInterval(keepAlive);
        unsubscribe();
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      untrack = simulator.trackStream(() => stop());
      signal.addEventListener("abort", () => stop(), { once: true });
      send(": connected\n\n");
    },
    cancel() {
      stop();
    },
  });
  return new Response(stream, { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive" } });
}
