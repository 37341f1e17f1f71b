/**
 * `kind = "http"`: POST the input as JSON to the agent; the response body is the result.
 * Timeouts, non-2xx answers and bodies that are not JSON are FlowErrors: the engine logs them
 * with the endpoint and session and ends the turn without sending anything odd to the user.
 * Their messages are logged and stored, so they show the URL in its display form and quote the
 * agent's answer without the flow's secrets (log/scrub.ts).
 */
import { flowSecrets } from "../config/secrets.ts";
import type { FlowSettings } from "../config/schema.ts";
import { displayUrl, scrub } from "../log/scrub.ts";
import { FlowError, type Flow } from "./flow.ts";

export const HTTP_FLOW_TIMEOUT_MS = 15_000;

export function httpFlow(name: string, settings: FlowSettings, fetchImpl: typeof fetch = fetch): Flow {
  const url = settings.url!;
  const shown = displayUrl(url);
  const secrets = flowSecrets(settings);
  // Scrubbed before it is cut: a secret cut in two would no longer be recognised.
  const quote = (text: string) => scrub(text, secrets).slice(0, 200);
  const timeoutMs = settings.timeout_ms ?? HTTP_FLOW_TIMEOUT_MS;
  const headers = { "content-type": "application/json", accept: "application/json", ...settings.headers };
  return {
    name,
    kind: "http",
    timeoutMs,
    async run(input, ctx) {
      let response: Response;
      try {
        response = await fetchImpl(url, { method: "POST", headers, body: JSON.stringify(input), signal: ctx.signal });
      } catch (error) {
        if (ctx.signal.aborted) throw new FlowError(`the agent at ${shown} did not answer within ${timeoutMs} ms`, { cause: error });
        throw new FlowError(`cannot reach the agent at ${shown}: ${scrub(String((error as Error)?.message), secrets)}`, { cause: error });
      }
      const text = await response.text().catch(() => "");
      if (!response.ok) throw new FlowError(`the agent at ${shown} answered HTTP ${response.status}: ${quote(text)}`);
      if (!text.trim()) return {};
      try {
        return JSON.parse(text);
      } catch {
        throw new FlowError(`the agent at ${shown} answered with a body that is not JSON: ${quote(text)}`);
      }
    },
  };
}
