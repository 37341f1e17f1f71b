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
 *
 * With `builtin_tools` (llm-builtins.ts) the model may answer in Messenger's shapes (quick replies,
 * buttons, cards, an image), hand the conversation to people, end the session or remember facts.
 * An answer whose calls are all built-in ones that show something ends the turn; else the model
 * is asked again. The user gets the model's texts first, each split at paragraph boundaries
 * (`message_max_chars`), then what the built-in tools showed, in the order they were called; quick
 * replies go on the last message. The system prompt is templated with the person (llm-prompt.ts).
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
import { BuiltinEffects, builtinDefinitions, describeOutput, quickRepliesLast, readFacts } from "./llm-builtins.ts";
import {
  boundHistory,
  type ChatMessage,
  DEFAULT_HISTORY_TOKENS,
  DEFAULT_MESSAGE_MAX_CHARS,
  describeInput,
  memoryPrompt,
  readHistory,
  renderPrompt,
  splitParagraphs,
} from "./llm-prompt.ts";
import type { FlowInput, FlowResult, Output } from "./schema.ts";
import type { LlmBuiltinTool } from "../config/llm-names.ts";

export const LLM_FLOW_TIMEOUT_MS = 60_000;
export const DEFAULT_HISTORY_TURNS = 20;
/** With `fallback_text` the flow gives up at `timeout_ms` and the turn may take this much longer, to send the fallback. */
export const FALLBACK_GRACE_MS = 1_000;

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
  const tools = new LlmTools(name, settings, { fetch: fetchImpl, timers, calls });
  const builtins: readonly LlmBuiltinTool[] = settings.builtin_tools ?? [];
  const isBuiltin = (tool: string): tool is LlmBuiltinTool => (builtins as readonly string[]).includes(tool);
  const definitions = [...tools.definitions(), ...builtinDefinitions(builtins)];
  const historyTokens = settings.history_tokens ?? DEFAULT_HISTORY_TOKENS;
  const messageMaxChars = settings.message_max_chars ?? DEFAULT_MESSAGE_MAX_CHARS;

  /** One request to the model: its message, with or without the tools on offer. */
  async function complete(messages: TurnMessage[], offerTools: boolean, ctx: FlowContext, signal: AbortSignal, deadline: number) {
    const body: Record<string, unknown> = { model: settings.model, messages };
    if (settings.temperature !== undefined) body.temperature = settings.temperature;
    if (settings.max_tokens !== undefined) body.max_tokens = settings.max_tokens;
    if (offerTools) body.tools = definitions;
    const text = await postChat(call, JSON.stringify(body), signal, deadline);
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      throw new FlowError(`the LLM at ${shown} answered with a body that is not JSON: ${quote(text)}`);
    }
    if (!checker(ChatAnswer).Check(answer)) throw new FlowError(`the LLM at ${shown} answered without choices[0].message.content or tool_calls`);
    if (answer.usage) ctx.usage?.({ prompt: answer.usage.prompt_tokens ?? 0, completion: answer.usage.completion_tokens ?? 0 });
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
    const history = boundHistory(readHistory(input.context.history), historyTurns, historyTokens);
    const userText = describeInput(input);
    const effects = new BuiltinEffects(readFacts(input.contact.memories), readFacts(input.context.memory), input.contact_id !== null);
    const system = [renderPrompt(settings.system_prompt ?? "", input, clock.now()), memoryPrompt(effects.facts.person, effects.facts.conversation)]
      .filter((part) => part !== "")
      .join("\n\n");
    const messages: TurnMessage[] = [...(system ? [{ role: "system" as const, content: system }] : []), ...history, { role: "user", content: userText }];
    const texts: string[] = [];
    const toolCtx = { ...ctx, signal };
    // Up to max_tool_rounds answers with tool calls; after them the model is asked without tools.
    for (let round = 0; ; round++) {
      const offer = definitions.length > 0 && round < maxRounds;
      const message = await complete(messages, offer, ctx, signal, deadline);
      const wanted = offer ? (message.tool_calls ?? []) : [];
      const said = message.content?.trim();
      if (said) texts.push(said);
      if (wanted.length === 0) {
        if (typeof message.content !== "string" && texts.length === 0 && effects.outputs.length === 0) {
          throw new FlowError(`the LLM at ${shown} answered without choices[0].message.content`);
        }
        break;
      }
      const toolCalls: ToolCall[] = wanted.map((c) => ({
        id: c.id,
        type: "function",
        function: { name: c.function.name, arguments: c.function.arguments ?? "" },
      }));
      messages.push({ role: "assistant", content: message.content ?? null, tool_calls: toolCalls });
      // Built-in calls first, in order (their outputs keep the order of the calls); the HTTP tools at the same time.
      const deferred = toolCalls.some((c) => !isBuiltin(c.function.name));
      let final = false;
      const results = await Promise.all(
        toolCalls.map((c) => {
          if (!isBuiltin(c.function.name)) return tools.call(c, input, toolCtx);
          const applied = effects.apply(c.function.name, c.function.arguments, deferred);
          final ||= applied.final;
          return tools.record(c.function.name, true, applied.outcome, applied.content, ctx.log);
        }),
      );
      for (const [i, c] of toolCalls.entries()) messages.push({ role: "tool", tool_call_id: c.id, content: results[i]! });
      // Nothing left for the model to read: what the built-in tools showed is the answer.
      if (final && !deferred) break;
    }
    const outputs: Output[] = quickRepliesLast([
      ...texts.flatMap((text) => splitParagraphs(text, messageMaxChars).map((t) => ({ text: t }))),
      ...effects.outputs,
    ]);
    const answered = outputs.map(describeOutput).join("\n\n");
    const kept = [...history, { role: "user" as const, content: userText }, ...(answered ? [{ role: "assistant" as const, content: answered }] : [])];
    const context: Record<string, unknown> = { ...input.context, history: boundHistory(kept, historyTurns, historyTokens) };
    if (effects.facts.changed.conversation) context.memory = effects.facts.conversation;
    const result: FlowResult = { outputs, context };
    if (effects.facts.changed.person) result.contact = { memories: effects.facts.person };
    if (effects.handover) result.handover = effects.handover;
    if (effects.endSession) result.end_session = true;
    return result;
  }
}
