/**
 * LibreTranslate: `POST {url}/translate` with a JSON body `{ q: [...], source: "<lang>" | "auto",
 * target, format: "text" | "html", api_key? }`; for a list `q` the answer is
 * `{ translatedText: [...], detectedLanguage?: [{ language, confidence }] }` (`detectedLanguage`
 * with `source: "auto"`). Errors are `{ error: "…" }`: 400 a bad request or language, 403 a
 * refused key, 429 too many requests. Self-hosted servers need no key; libretranslate.com does.
 */
import type { TranslationSettings } from "../../config/schema.ts";
import { baseLanguage, isTraditionalChinese, normalizeLanguage } from "../languages.ts";
import { callProvider, errorMessage } from "./call.ts";
import { baseUrl, callOptions, shapeError, type Provider, type ProviderDeps } from "./provider.ts";

export const LIBRETRANSLATE_URL = "https://libretranslate.com";

/** LibreTranslate's codes: the language; traditional Chinese is `zt` (every version takes `zh` and `zt`). */
export function libreLanguage(tag: string): string {
  return isTraditionalChinese(tag) ? "zt" : baseLanguage(tag);
}

export function libreTranslateProvider(settings: TranslationSettings, deps: ProviderDeps): Provider {
  const url = `${baseUrl(settings.url ?? LIBRETRANSLATE_URL)}/translate`;
  const options = callOptions(settings, deps, {
    provider: "libretranslate",
    errorText: (_, body) => errorMessage(body),
    advice: (status) =>
      status === 403
        ? "the server refused the request: check api_key (libretranslate.com needs one; a self-hosted server only with --api-keys)"
        : status === 400
          ? "check that the server has both languages installed (GET /languages)"
          : undefined,
  });
  return {
    name: "libretranslate",
    maxBatch: 50,
    maxChars: 20_000,
    async translate(request, stopping) {
      const body: Record<string, unknown> = {
        q: request.texts,
        source: request.source ? libreLanguage(request.source) : "auto",
        target: libreLanguage(request.target),
        format: request.markup ? "html" : "text",
      };
      if (settings.api_key) body.api_key = settings.api_key;
      const answer = (await callProvider({ ...options, stopping }, () => ({
        url,
        init: { headers: { "content-type": "application/json" }, body: JSON.stringify(body) },
      }))) as { translatedText?: unknown; detectedLanguage?: unknown };
      const texts = answer?.translatedText;
      if (!Array.isArray(texts) || texts.length !== request.texts.length || texts.some((t) => typeof t !== "string"))
        throw shapeError("libretranslate", "one translatedText per text");
      const detected = Array.isArray(answer.detectedLanguage) ? answer.detectedLanguage : [];
      return {
        texts: texts as string[],
        detected: request.texts.map((_, i) => {
          const language = (detected[i] as { language?: unknown } | undefined)?.language;
          return typeof language === "string" ? normalizeLanguage(language) : null;
        }),
      };
    },
  };
}
