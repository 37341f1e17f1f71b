/**
 * The tools an `llm` flow offers its model (`[[flows.X.tools]]`, docs/flows.md): what the request
 * says of them (`definitions`), and one call of a tool the model asked for (`call`): an HTTP
 * request to the tool's `url` with `{ arguments, user }`, its answer (JSON or text) as the
 * content of the `role: "tool"` message. A tool that fails, takes longer than `tool_timeout_ms`,
 * is unknown or gets arguments that are not JSON gives the model an error result: the turn goes
 * on, and the model can say so to the user.
 */
import { readFileSync } from "node:fs";
import { flowSecrets } from "../config/secrets.ts";
import type { FlowSettings, LlmToolSettings } from "../config/schema.ts";
import { realTimers, type Timers } from "../core/clock.ts";
import { displayUrl, scrub } from "../log/scrub.ts";
import type { Counter } from "../metrics/registry.ts";
import type { FlowContext } from "./flow.ts";
import type { FlowInput } from "./schema.ts";

export const DEFAULT_MAX_TOOL_ROUNDS = 4;
export const DEFAULT_TOOL_TIMEOUT_MS = 10_000;
/** A tool's answer is cut to this many characters before the model reads it. */
export const MAX_TOOL_RESULT_CHARS = 20_000;

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export type ToolOutcome = "ok" | "error" | "timeout" | "unknown_tool" | "invalid_arguments";

export interface ToolDeps {
  fetch: typeof fetch;
  timers?: Timers;
  /** `messenger_llm_tool_calls_total`, counted by flow, tool and outcome. */
  calls?: Counter;
}

export class LlmTools {
  readonly #tools: Map<string, { settings: LlmToolSettings; parameters: unknown; secrets: string[] }>;
  readonly #timeoutMs: number;

  constructor(
    readonly flowName: string,
    settings: FlowSettings,
    readonly deps: ToolDeps,
  ) {
    this.#timeoutMs = settings.tool_timeout_ms ?? DEFAULT_TOOL_TIMEOUT_MS;
    this.#tools = new Map(
      (settings.tools ?? []).map((t) => [
        t.name,
        {
          settings: t,
          // validate.ts has read and checked the file when the settings were loaded.
          parameters: t.parameters ?? JSON.parse(readFileSync(t.parameters_file!, "utf8")),
          secrets: flowSecrets(t),
        },
      ]),
    );
  }

  get size(): number {
    return this.#tools.size;
  }

  /** The request's `tools`. */
  definitions(): { type: "function"; function: { name: string; description: string; parameters: unknown } }[] {
    return [...this.#tools.values()].map(({ settings, parameters }) => ({
      type: "function",
      function: { name: settings.name, description: settings.description, parameters },
    }));
  }

  /**
   * Counts one call — of these tools or of a built-in one (llm-builtins.ts) — by tool (`unknown`
   * for a name the flow does not have) and outcome, logs a failed one; returns `content`.
   */
  record(name: string, known: boolean, outcome: ToolOutcome, content: string, log: FlowContext["log"], detail?: string): string {
    this.deps.calls?.inc({ flow: this.flowName, tool: known ? name : "unknown", outcome });
    if (outcome !== "ok") log.warn("llm tool call failed", { flow: this.flowName, tool: name, outcome, detail: detail ?? content });
    return content;
  }

  /** Calls one tool; the content of its `role: "tool"` message. Never throws. */
  async call(call: ToolCall, input: FlowInput, ctx: FlowContext): Promise<string> {
    const name = call.function.name;
    const tool = this.#tools.get(name);
    const done = (outcome: ToolOutcome, content: string, detail?: string) => this.record(name, tool !== undefined, outcome, content, ctx.log, detail);
    if (!tool) return done("unknown_tool", errorResult(`there is no tool named "${name}"; the tools are: ${[...this.#tools.keys()].join(", ")}`));
    let args: unknown;
    try {
      args = JSON.parse(call.function.arguments || "{}");
    } catch {
      return done("invalid_arguments", errorResult("the arguments are not JSON: call the tool again with a JSON object"));
    }
    const { settings, secrets } = tool;
    const shown = displayUrl(settings.url);
    const headers: Record<string, string> = { "content-type": "application/json", ...settings.headers };
    if (settings.api_key) headers.authorization = `Bearer ${settings.api_key}`;
    const user = { id: input.user_id, page_id: input.page_id, endpoint_id: input.endpoint_id, session_id: input.session_id, contact: input.contact };

    const timeLimit = new AbortController();
    const cancel = (this.deps.timers ?? realTimers).after(this.#timeoutMs, () => timeLimit.abort());
    const signal = AbortSignal.any([ctx.signal, timeLimit.signal]);
    try {
      const response = await this.deps.fetch(settings.url, {
        method: settings.method ?? "POST",
        headers,
        body: JSON.stringify({ arguments: args, user }),
        signal,
      });
      const text = await readText(response, signal);
      if (!response.ok) {
        const detail = `the tool answered HTTP ${response.status}: ${scrub(text, secrets).slice(0, 200)}`;
        return done("error", errorResult(`the tool failed (HTTP ${response.status})`), `${shown}: ${detail}`);
      }
      return done("ok", asResult(text));
    } catch (error) {
      if (timeLimit.signal.aborted) return done("timeout", errorResult(`the tool did not answer within ${this.#timeoutMs} ms`), shown);
      const why = scrub(String((error as Error)?.message), secrets);
      return done("error", errorResult("the tool could not be reached"), `${shown}: ${why}`);
    } finally {
      cancel();
    }
  }
}

/** The body's text; stops waiting when the signal aborts (a body that never ends). */
function readText(response: Response, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    response.text().then(resolve, reject);
  });
}

/** A JSON answer as compact JSON, any other text as it is; cut to MAX_TOOL_RESULT_CHARS. */
function asResult(text: string): string {
  let content = text;
  try {
    content = JSON.stringify(JSON.parse(text));
  } catch {
    // not JSON: the text as it is
  }
  return content.length > MAX_TOOL_RESULT_CHARS ? `${content.slice(0, MAX_TOOL_RESULT_CHARS)}…` : content;
}

/** What the model reads when a call failed. */
function errorResult(message: string): string {
  return JSON.stringify({ error: message });
}
