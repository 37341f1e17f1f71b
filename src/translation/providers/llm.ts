/**
 * An OpenAI-compatible chat completions API (OpenAI, Ollama, vLLM, llama.cpp, LiteLLM) as a
 * translator: `POST {url}/chat/completions` with `model`, a system message that says what to do,
 * and a user message holding the request as JSON (`{ source, target, format, texts }`); asked for
 * a JSON object (`response_format: { type: "json_object" }`, temperature 0), the answer's
 * `choices[0].message.content` must be `{ "translations": [...], "languages"?: [...] }` with one
 * translation per text. Anything else is a failed call (`unreadable_answer`), never a text sent.
 */
import type { TranslationSettings } from "../../config/schema.ts";
import { normalizeLanguage } from "../languages.ts";
import { ProviderError, callProvider, errorMessage } from "./call.ts";
import { baseUrl, callOptions, type Provider, type ProviderDeps } from "./provider.ts";

export const LLM_SYSTEM_PROMPT = [
  "You translate the messages of a chat between a person and a bot.",
  'The user message is JSON: { "source": the texts\' language as a BCP 47 tag, or null when you must detect it, "target": the language to translate into, "format": "text" or "html", "texts": [...] }.',
  "Translate every text into the target language; keep its meaning, tone, emoji, numbers, URLs and line breaks.",
  'With format "html", leave every <span translate="no" class="notranslate">…</span> element exactly as it is, and keep the other markup.',
  'Answer with one JSON object and nothing else: { "translations": [one translated string per text, in order], "languages": [the BCP 47 tag of each text\'s language, in order] }.',
].join("\n");

export function llmProvider(settings: TranslationSettings, deps: ProviderDeps): Provider {
  const url = `${baseUrl(settings.url ?? "")}/chat/completions`;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (settings.api_key) headers.authorization = `Bearer ${settings.api_key}`;
  const options = callOptions(settings, deps, {
    provider: "llm",
    errorText: (_, body) => errorMessage(body),
    quota: (status, body) => status === 403 && /quota/i.test(body),
    advice: (status) =>
      status === 401
        ? "the key was refused: check api_key"
        : status === 404
          ? "check url (the API's base, e.g. https://api.openai.com/v1) and model"
          : undefined,
  });
  return {
    name: "llm",
    maxBatch: 50,
    maxChars: 8_000,
    async translate(request, stopping) {
      const content = JSON.stringify({ source: request.source, target: request.target, format: request.markup ? "html" : "text", texts: request.texts });
      const body = JSON.stringify({
        model: settings.model,
        temperature: 0,
        response_format: { type: "json_object" },
        messages: [
          { role: "system", content: LLM_SYSTEM_PROMPT },
          { role: "user", content },
        ],
      });
      const answer = (await callProvider({ ...options, stopping }, () => ({ url, init: { headers, body } }))) as {
        choices?: { message?: { content?: unknown } }[];
      };
      const reply = answer?.choices?.[0]?.message?.content;
      if (typeof reply !== "string") throw new ProviderError("unreadable_answer", "llm answered without choices[0].message.content");
      const parsed = parseJson(reply) as { translations?: unknown; languages?: unknown } | null;
      const texts = parsed?.translations;
      if (!Array.isArray(texts) || texts.length !== request.texts.length || texts.some((t) => typeof t !== "string"))
        throw new ProviderError("unreadable_answer", `llm answered without one translation per text (${request.texts.length}): ${reply.slice(0, 200)}`);
      const languages = Array.isArray(parsed!.languages) ? parsed!.languages : [];
      return {
        texts: texts as string[],
        detected: request.texts.map((_, i) => (typeof languages[i] === "string" ? normalizeLanguage(languages[i] as string) : null)),
      };
    },
  };
}

/** The JSON object of a model's answer, also inside a ```json fence. */
function parseJson(text: string): unknown {
  const fenced = /```(?:json)?\s*([\s\S]*?)```/.exec(text);
  try {
    return JSON.parse(fenced ? fenced[1]! : text);
  } catch {
    return null;
  }
}
