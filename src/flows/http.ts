/**
 * `kind = "http"`: POST the input as JSON to the agent; the response body is the result.
 * Timeouts, non-2xx answers and bodies that are not JSON are FlowErrors: the engine logs them
 * with the endpoint and session and ends the turn without sending anything odd to the user.
 */
import type { FlowSettings } from "../config/schema.ts";
import { FlowError, type Flow } from "./flow.ts";

export const HTTP_FLOW_TIMEOUT_MS = 15_000;

export function httpFlow(name: string, settings: FlowSettings, fetchImpl: typeof fetch = fetch): Flow {
  const url = settings.url!;
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
        if (ctx.signal.aborted) throw new FlowError(`the agent at ${url} did not answer within ${timeoutMs} ms`, { cause: error });
        throw new FlowError(`cannot reach the agent at ${url}: ${(error as Error).message}`, { cause: error });
      }
      const text = await response.text().catch(() => "");
      if (!response.ok) throw new FlowError(`the agent at ${url} answered HTTP ${response.status}: ${text.slice(0, 200)}`);
      if (!text.trim()) return {};
      try {
        return JSON.parse(text);
      } catch {
        throw new FlowError(`the agent at ${url} answered with a body that is not JSON: ${text.slice(0, 200)}`);
      }
    },
  };
}
