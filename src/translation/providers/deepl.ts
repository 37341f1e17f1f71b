/**
 * DeepL: `POST {host}/v2/translate` with `Authorization: DeepL-Auth-Key <key>` and a JSON body
 * `{ text: [...], target_lang, source_lang?, glossary_id?, formality?, tag_handling? }`; the
 * answer is `{ translations: [{ detected_source_language, text }] }`, in the order of `text`.
 * The host is DeepL Free's (api-free.deepl.com) for a key ending in `:fx`, else DeepL Pro's
 * (api.deepl.com), unless `url` names another. Errors are `{ message }`; 456 means the
 * character quota of the billing period is used up.
 */
import type { TranslationSettings } from "../../config/schema.ts";
import { baseLanguage, isTraditionalChinese, normalizeLanguage, subtag } from "../languages.ts";
import { ProviderError, callProvider, errorMessage } from "./call.ts";
import { baseUrl, callOptions, shapeError, type Provider, type ProviderDeps } from "./provider.ts";

export const DEEPL_FREE_URL = "https://api-free.deepl.com";
export const DEEPL_PRO_URL = "https://api.deepl.com";

/** The target languages whose formality DeepL can change (`more`, `less`; `prefer_*` falls back by itself). */
const FORMALITY_TARGETS = new Set(["DE", "FR", "IT", "ES", "NL", "PL", "PT-BR", "PT-PT", "JA", "RU"]);

/** DeepL's source languages have no variants: `EN`, `PT`, `ZH`. */
export function deeplSource(tag: string): string {
  return baseLanguage(tag).toUpperCase();
}

/**
 * DeepL's target languages: English and Portuguese need their variant (`EN-US` unless `en-GB`;
 * `PT-BR` unless `pt-PT`: most Portuguese speakers on Messenger write from Brazil), Chinese its
 * script (`ZH-HANS`, `ZH-HANT`), the others are the language.
 */
export function deeplTarget(tag: string): string {
  const base = baseLanguage(tag);
  const region = subtag(tag);
  if (base === "en") return region === "GB" ? "EN-GB" : "EN-US";
  if (base === "pt") return region === "PT" ? "PT-PT" : "PT-BR";
  if (base === "zh") return isTraditionalChinese(tag) ? "ZH-HANT" : "ZH-HANS";
  return base.toUpperCase();
}

export function deeplProvider(settings: TranslationSettings, deps: ProviderDeps): Provider {
  const key = settings.api_key ?? "";
  const url = `${baseUrl(settings.url ?? (key.endsWith(":fx") ? DEEPL_FREE_URL : DEEPL_PRO_URL))}/v2/translate`;
  const options = callOptions(settings, deps, {
    provider: "deepl",
    errorText: (_, body) => errorMessage(body),
    advice: (status) =>
      status === 456
        ? "the character quota of this billing period is used up: raise the plan's limit in DeepL's account, or wait for the next period"
        : status === 403
          ? "the key was refused: check api_key (a key ending in :fx belongs to DeepL Free, api-free.deepl.com)"
          : undefined,
  });
  /** Glossaries DeepL refused for a language pair (`<id> SRC>TGT`): that pair is translated without. */
  const unfit = new Set<string>();
  const provider: Provider = {
    name: "deepl",
    maxBatch: 50,
    maxChars: 100_000,
    async translate(request, stopping) {
      const target = deeplTarget(request.target);
      const body: Record<string, unknown> = { text: request.texts, target_lang: target };
      if (request.source) body.source_lang = deeplSource(request.source);
      // A glossary needs the source language, and a dictionary for the pair.
      const pair = `${request.glossary} ${body.source_lang}>${target}`;
      if (request.glossary && request.source && !unfit.has(pair)) body.glossary_id = request.glossary;
      if (request.formality && (request.formality.startsWith("prefer_") || request.formality === "default" || FORMALITY_TARGETS.has(target)))
        body.formality = request.formality;
      if (request.markup) body.tag_handling = "html";
      let answer: { translations?: { text?: unknown; detected_source_language?: unknown }[] };
      try {
        answer = (await callProvider({ ...options, stopping }, () => ({
          url,
          init: { headers: { authorization: `DeepL-Auth-Key ${key}`, "content-type": "application/json" }, body: JSON.stringify(body) },
        }))) as typeof answer;
      } catch (error) {
        // A glossary of another language pair makes DeepL refuse the request (400): without it, the text is still translated.
        if (!(error instanceof ProviderError && error.status === 400 && body.glossary_id)) throw error;
        unfit.add(pair);
        deps.warn(`DeepL refused glossary ${request.glossary} for ${body.source_lang} → ${target} (${error.message}); that pair is translated without it`);
        return provider.translate(request, stopping);
      }
      const translations = answer?.translations;
      if (!Array.isArray(translations) || translations.length !== request.texts.length || translations.some((t) => typeof t?.text !== "string"))
        throw shapeError("deepl", `one translations[].text per text`);
      return {
        texts: translations.map((t) => t.text as string),
        detected: translations.map((t) => (typeof t.detected_source_language === "string" ? normalizeLanguage(t.detected_source_language) : null)),
      };
    },
  };
  return provider;
}
