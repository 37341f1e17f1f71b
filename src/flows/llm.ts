/**
 * `kind = "llm"`: any OpenAI-compatible chat completions API (OpenAI, Ollama, vLLM, llama.cpp,
 * LiteLLM ...). The request carries `system_prompt`, the last `history_turns` turns of this
 * session and the user's text; the answer becomes text outputs, split at paragraph boundaries
 * when longer than Messenger allows. The history lives in the session context under `history`,
 * so it ends with the session. Error messages show the URL in its display form and quote the
 * API's answer without the flow's secrets (log/scrub.ts), as http.ts does.
 *
 * `provider = "azure"`: `url` is the deployment's URL, the request goes to
 * `{url}/chat/completions?api-version={api_version}` with the key in an `api-key` header. Each
 * request is tried again on 429, 5xx and network errors (llm-call.ts). With `fallback_text`, a turn
 * whose model cannot answer (errors after the retries, the time limit, an unreadable answer) sends
 * that text instead of failing; the error is logged and counted in `messenger_llm_fallbacks_total`.
 *
 * With `tools` (llm-tools.ts) the model may answer with tool calls instead: each is called, its
 * result given back as a `role: "tool"` message, and the model asked again, up to
 * `max_tool_rounds` times; then it is asked without tools for its answer. Only the user's texts and
 * the final answers are kept in the history.
 */
import { Type } from "@sinclair/typebox";
import { flowSecrets } from "../config/secrets.ts";
import type { FlowSettings } from "../config/schema.ts";
import { checker } from "../core/checks.ts";
import { type Clock, realTimers, systemClock, type Timers } from "../core/clock.ts";
import { displayUrl, scrub } from "../log/scrub.ts";
import type { Registry } from "../metrics/registry.ts";
import { FlowError, type Flow, type FlowContext } from "./flow.ts";
import { type ChatCall, DEFAULT_LLM_RETRIES, postChat } from "./llm-call.ts";
import { DEFAULT_MAX_TOOL_ROUNDS, LlmTools, type ToolCall } from "./llm-tools.ts";
import type { FlowInput, FlowResult } from "./schema.ts";

export const LLM_FLOW_TIMEOUT_MS = 60_000;
export const DEFAULT_HISTORY_TURNS = 20;
/** With `fallback_text` the flow gives up at `timeout_ms` and the turn may take this much longer, to send the fallback. */
export const FALLBACK_GRACE_MS = 1_000;

interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** The messages of one turn: the history's, and the model's tool calls with their results. */
type TurnMessage =
  | ChatMessage
  | { role: "assistant"; content: string | null; tool_calls: ToolCall[] }
  | { role: "tool"; tool_call_id: string; content: string };

/** The model's answer: the one schema of what this flow reads from it. */
const ChatAnswer = Type.Object({
  choices: Type.Array(
    Type.Object({
      message: Type.Object({
        content: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        tool_calls: Type.Optional(
          Type.Array(
            Type.Object({
              id: Type.String(),
              type: Type.Optional(Type.String()),
              function: Type.Object({ name: Type.String(), arguments: Type.Optional(Type.String()) }),
            }),
          ),
        ),
      }),
    }),
    { minItems: 1 },
  ),
  usage: Type.Optional(
    Type.Object({ prompt_tokens: Type.Optional(Type.Number({ minimum: 0 })), completion_tokens: Type.Optional(Type.Number({ minimum: 0 })) }),
  ),
});

/** What the flow needs besides its settings; tests pass a fake fetch and a manual clock (test/helpers/manual-clock.ts). */
export interface LlmFlowDeps {
  fetch?: typeof fetch;
  /** The tools' time limits, the waits between retries and the turn's own time limit. */
  timers?: Timers;
  /** Whether a retry's wait still fits in the turn. */
  clock?: Clock;
  metrics?: Registry;
}

export function llmFlow(name: string, settings: FlowSettings, deps: LlmFlowDeps | typeof fetch = {}): Flow {
  const { fetch: fetchImpl = fetch, timers = realTimers, clock = systemClock, metrics } = typeof deps === "function" ? { fetch: deps } : deps;
  const azure = settings.provider === "azure";
  const base = `${settings.url!.replace(/\/+$/, "")}/chat/completions`;
  const endpoint = azure ? `${base}?api-version=${encodeURIComponent(settings.api_version ?? "")}` : base;
  const shown = displayUrl(endpoint);
  const secrets = flowSecrets(settings);
  const quote = (text: string) => scrub(text, secrets).slice(0, 200);
  const timeoutMs = settings.timeout_ms ?? LLM_FLOW_TIMEOUT_MS;
  const historyTurns = settings.history_turns ?? DEFAULT_HISTORY_TURNS;
  const maxRounds = settings.max_tool_rounds ?? DEFAULT_MAX_TOOL_ROUNDS;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (settings.api_key) {
    if (azure) headers["api-key"] = settings.api_key;
    else headers.authorization = `Bearer ${settings.api_key}`;
  }
  const fallbackText = settings.fallback_text;
  const call: ChatCall = {
    url: endpoint,
    shown,
    headers,
    retries: settings.retries ?? DEFAULT_LLM_RETRIES,
    timeoutMs,
    secrets,
    fetch: fetchImpl,
    timers,
    clock,
  };
  const fallbacks = metrics?.counter(
    "messenger_llm_fallbacks_total",
    "Turns of llm flows answered with fallback_text because the model could not answer, by endpoint and flow.",
  );
  const calls = metrics?.counter(
    "messenger_llm_tool_calls_total",
    "Tool calls of llm flows, by flow, tool and outcome (ok, error, timeout, unknown_tool, invalid_arguments).",
  );
  const tokens = metrics?.counter("messenger_llm_tokens_total", "Tokens the llm flows' models reported, by endpoint, flow and kind (prompt, completion).");
  const tools = new LlmTools(name, settings, { fetch: fetchImpl, timers, calls });

  /** One request to the model: its message, with or without the tools on offer. */
  async function complete(messages: TurnMessage[], offerTools: boolean, input: FlowInput, signal: AbortSignal, deadline: number) {
    const body: Record<string, unknown> = { model: settings.model, messages };
    if (settings.temperature !== undefined) body.temperature = settings.temperature;
    if (settings.max_tokens !== undefined) body.max_tokens = settings.max_tokens;
    if (offerTools) body.tools = tools.definitions();
    const text = await postChat(call, JSON.stringify(body), signal, deadline);
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      throw new FlowError(`the LLM at ${shown} answered with a body that is not JSON: ${quote(text)}`);
    }
    if (!checker(ChatAnswer).Check(answer)) throw new FlowError(`the LLM at ${shown} answered without choices[0].message.content or tool_calls`);
    const labels = { endpoint: input.endpoint_id, flow: name };
    tokens?.inc({ ...labels, kind: "prompt" }, answer.usage?.prompt_tokens ?? 0);
    tokens?.inc({ ...labels, kind: "completion" }, answer.usage?.completion_tokens ?? 0);
    return answer.choices[0]!.message;
  }

  return {
    name,
    kind: "llm",
    timeoutMs: fallbackText === undefined ? timeoutMs : timeoutMs + FALLBACK_GRACE_MS,
    async run(input, ctx): Promise<FlowResult> {
      if (fallbackText === undefined) return turn(input, ctx, ctx.signal);
      // The flow's own time limit, so that the fallback is sent before the engine's (timeoutMs + grace) passes.
      const limit = new AbortController();
      const cancel = timers.after(timeoutMs, () => limit.abort());
      try {
        return await turn(input, ctx, AbortSignal.any([ctx.signal, limit.signal]));
      } catch (error) {
        if (!(error instanceof FlowError) || ctx.signal.aborted) throw error;
        ctx.log.error("llm flow answered with fallback_text: the model could not answer", { flow: name, error: error.message });
        fallbacks?.inc({ endpoint: input.endpoint_id, flow: name });
        return { outputs: [{ text: fallbackText }], context: input.context };
      } finally {
        cancel();
      }
    },
  };

  async function turn(input: FlowInput, ctx: FlowContext, signal: AbortSignal): Promise<FlowResult> {
    const deadline = clock.now() + timeoutMs;
    const history = lastTurns(readHistory(input.context.history), historyTurns);
    const userText = describeInput(input);
    const messages: TurnMessage[] = [
      ...(settings.system_prompt ? [{ role: "system" as const, content: settings.system_prompt }] : []),
      ...history,
      { role: "user", content: userText },
    ];
    // Up to max_tool_rounds answers with tool calls; after them the model is asked without tools.
    let answer: string | null | undefined;
    for (let round = 0; ; round++) {
      const offer = tools.size > 0 && round < maxRounds;
      const message = await complete(messages, offer, input, signal, deadline);
      const wanted = offer ? (message.tool_calls ?? []) : [];
      if (wanted.length === 0) {
        answer = message.content;
        break;
      }
      const toolCalls: ToolCall[] = wanted.map((c) => ({
        id: c.id,
        type: "function",
        function: { name: c.function.name, arguments: c.function.arguments ?? "" },
      }));
      messages.push({ role: "assistant", content: message.content ?? null, tool_calls: toolCalls });
      const results = await Promise.all(toolCalls.map((c) => tools.call(c, input, { ...ctx, signal })));
      for (const [i, c] of toolCalls.entries()) messages.push({ role: "tool", tool_call_id: c.id, content: results[i]! });
    }
    if (typeof answer !== "string") throw new FlowError(`the LLM at ${shown} answered without choices[0].message.content`);
    const reply = answer.trim();
    const kept = [...history, { role: "user" as const, content: userText }, ...(reply ? [{ role: "assistant" as const, content: reply }] : [])];
    return {
      outputs: reply ? [{ text: reply }] : [],
      context: { ...input.context, history: lastTurns(kept, historyTurns) },
    };
  }
}

/** The last `turns` turns (a user message and its answer each). `slice(-0)` would keep everything. */
function lastTurns(messages: ChatMessage[], turns: number): ChatMessage[] {
  return turns > 0 ? messages.slice(-2 * turns) : [];
}

function readHistory(value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) return [];
  return value.filter(
    (m): m is ChatMessage => typeof m === "object" && m !== null && (m.role === "user" || m.role === "assistant") && typeof m.content === "string",
  );
}

/** What the model reads for this input: the text, and what was attached. */
function describeInput(input: FlowInput): string {
  const parts = input.text ? [input.text] : [];
  for (const a of input.data.attachments ?? []) parts.push(`[${a.type}${a.url ? `: ${a.url}` : ""}]`);
  return parts.join("\n") || "[empty message]";
}
