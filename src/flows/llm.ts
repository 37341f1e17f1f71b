/**
 * `kind = "llm"`: any OpenAI-compatible chat completions API (OpenAI, Ollama, vLLM, llama.cpp,
 * LiteLLM ...). The request carries `system_prompt`, the last `history_turns` turns of this
 * session and the user's text; the answer becomes text outputs, split at paragraph boundaries
 * when longer than Messenger allows. The history lives in the session context under `history`,
 * so it ends with the session. Error messages show the URL in its display form and quote the
 * API's answer without the flow's secrets (log/scrub.ts), as http.ts does.
 */
import { flowSecrets } from "../config/secrets.ts";
import type { FlowSettings } from "../config/schema.ts";
import { displayUrl, scrub } from "../log/scrub.ts";
import { FlowError, type Flow } from "./flow.ts";
import type { FlowInput, FlowResult } from "./schema.ts";

export const LLM_FLOW_TIMEOUT_MS = 60_000;
export const DEFAULT_HISTORY_TURNS = 20;

interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export function llmFlow(name: string, settings: FlowSettings, fetchImpl: typeof fetch = fetch): Flow {
  const endpoint = `${settings.url!.replace(/\/+$/, "")}/chat/completions`;
  const shown = displayUrl(endpoint);
  const secrets = flowSecrets(settings);
  const quote = (text: string) => scrub(text, secrets).slice(0, 200);
  const timeoutMs = settings.timeout_ms ?? LLM_FLOW_TIMEOUT_MS;
  const historyTurns = settings.history_turns ?? DEFAULT_HISTORY_TURNS;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (settings.api_key) headers.authorization = `Bearer ${settings.api_key}`;

  return {
    name,
    kind: "llm",
    timeoutMs,
    async run(input, ctx): Promise<FlowResult> {
      const history = lastTurns(readHistory(input.context.history), historyTurns);
      const userText = describeInput(input);
      const messages: ChatMessage[] = [
        ...(settings.system_prompt ? [{ role: "system" as const, content: settings.system_prompt }] : []),
        ...history,
        { role: "user", content: userText },
      ];
      const body: Record<string, unknown> = { model: settings.model, messages };
      if (settings.temperature !== undefined) body.temperature = settings.temperature;
      if (settings.max_tokens !== undefined) body.max_tokens = settings.max_tokens;

      let response: Response;
      try {
        response = await fetchImpl(endpoint, { method: "POST", headers, body: JSON.stringify(body), signal: ctx.signal });
      } catch (error) {
        if (ctx.signal.aborted) throw new FlowError(`the LLM at ${shown} did not answer within ${timeoutMs} ms`, { cause: error });
        throw new FlowError(`cannot reach the LLM at ${shown}: ${scrub(String((error as Error)?.message), secrets)}`, { cause: error });
      }
      const text = await response.text().catch(() => "");
      if (!response.ok) throw new FlowError(`the LLM at ${shown} answered HTTP ${response.status}: ${quote(text)}`);
      let answer: unknown;
      try {
        answer = (JSON.parse(text) as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message?.content;
      } catch {
        throw new FlowError(`the LLM at ${shown} answered with a body that is not JSON: ${quote(text)}`);
      }
      if (typeof answer !== "string") throw new FlowError(`the LLM at ${shown} answered without choices[0].message.content`);
      const reply = answer.trim();
      const kept = [...history, { role: "user" as const, content: userText }, ...(reply ? [{ role: "assistant" as const, content: reply }] : [])];
      return {
        outputs: reply ? [{ text: reply }] : [],
        context: { ...input.context, history: lastTurns(kept, historyTurns) },
      };
    },
  };
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
