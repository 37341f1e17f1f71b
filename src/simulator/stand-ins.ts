/**
 * The simulator's stand-ins for the services an endpoint may call besides the Graph API: a
 * translation provider (fake-translation.ts, a small dictionary of German, French and Spanish)
 * and an NLU service (fake-nlu/, a shop's intents by rules). They answer in process, at the
 * made-up host `stand-in.simulator`, which never reaches the network: the demo's settings
 * (config/demo.ts) point its translation and NLU there, so a newcomer sees both work in the
 * simulator without an account anywhere. Settings of your own can use them too while the
 * simulator is on (docs/simulator.md).
 */
import { DROPPED, FakeTranslation } from "./fake-translation.ts";
import { FakeNlu } from "./fake-nlu/fake-nlu.ts";
import { STAND_IN_ORIGIN } from "../config/demo.ts";

export { STAND_IN_ORIGIN };

/** A fetch that answers `http://stand-in.simulator/translation/<provider>/…` and `/nlu/…` in process, and hands everything else to `real`. */
export function standInFetch(real: typeof fetch): typeof fetch {
  const translation = new FakeTranslation({ record: false });
  const nlu = FakeNlu.inProcess({ record: false });
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const request = input instanceof Request ? new Request(input, init) : new Request(String(input), init);
    const url = new URL(request.url);
    if (url.origin !== STAND_IN_ORIGIN) return real(input as never, init);
    if (url.pathname.startsWith("/translation/")) {
      const rewritten = new Request(`${STAND_IN_ORIGIN}${url.pathname.slice("/translation".length)}${url.search}`, request);
      const answer = await translation.handle(rewritten);
      if (answer === DROPPED) throw new TypeError("fetch failed: the stand-in dropped the connection");
      return answer;
    }
    if (url.pathname.startsWith("/nlu/")) return nlu.handle(new Request(`${STAND_IN_ORIGIN}${url.pathname.slice("/nlu".length)}${url.search}`, request));
    return new Response(JSON.stringify({ error: "no such stand-in: use /translation/<provider> or /nlu" }), { status: 404 });
  }) as typeof fetch;
}
