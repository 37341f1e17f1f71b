/**
 * What the translation (translation.ts) asks of a provider: some texts from one language (or
 * from the one it detects) into another, in one request. Each provider (deepl.ts, google.ts,
 * microsoft.ts, libretranslate.ts, llm.ts) maps this to its own API and its own language codes.
 */
import type { TranslationSettings } from "../../config/schema.ts";
import type { Timers } from "../../core/clock.ts";
import { urlSecrets } from "../../log/scrub.ts";
import { ProviderError, type CallOptions } from "./call.ts";

export interface TranslateRequest {
  /** Plain texts, or HTML (markers.ts `toMarkup`) when `markup`. */
  texts: string[];
  /** The texts' language (a BCP 47 tag), or null: the provider detects it. */
  source: string | null;
  target: string;
  markup: boolean;
  /** DeepL: the glossary for this direction. */
  glossary?: string;
  /** DeepL: the formality of the translation. */
  formality?: string;
}

export interface TranslateAnswer {
  /** One per text, in order (HTML when the request was). */
  texts: string[];
  /** The language the provider detected for each text (normalized), when `source` was null and it said. */
  detected: (string | null)[];
}

export interface Provider {
  readonly name: TranslationSettings["provider"];
  /** Texts per request at most (the API's own limit). */
  readonly maxBatch: number;
  /** Characters per request at most (the API's limit, or a size it answers in time). */
  readonly maxChars: number;
  translate(request: TranslateRequest, stopping?: AbortSignal): Promise<TranslateAnswer>;
}

export interface ProviderDeps {
  timers: Timers;
  fetch: typeof fetch;
  /** Something the operator should change, said once (a glossary that does not fit a language pair). */
  warn(message: string): void;
}

/** The call options every provider starts from: the time limit, the tries, the secrets kept out of messages. */
export function callOptions(
  settings: TranslationSettings,
  deps: ProviderDeps,
  specific: Pick<CallOptions, "provider" | "errorText" | "advice" | "quota" | "rateLimited">,
): Omit<CallOptions, "stopping"> {
  const secrets = [settings.api_key, ...(settings.url ? urlSecrets(settings.url) : [])].filter((s): s is string => !!s);
  return { ...specific, timeoutMs: settings.timeout_ms, retries: settings.retries, timers: deps.timers, fetch: deps.fetch, secrets };
}

/** The base URL without a trailing slash. */
export function baseUrl(url: string): string {
  return url.replace(/\/+$/, "");
}

/** An answer that is not of the documented shape. */
export function shapeError(provider: string, what: string): ProviderError {
  return new ProviderError("unreadable_answer", `${provider} answered without ${what}`);
}
