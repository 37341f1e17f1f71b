/**
 * Google Cloud Translation (Basic, v2): `POST {host}/language/translate/v2?key=<key>` with a JSON
 * body `{ q: [...], target, source?, format: "text" | "html" }`; the answer is
 * `{ data: { translations: [{ translatedText, detectedSourceLanguage? }] } }`, in the order of
 * `q` (`detectedSourceLanguage` when no `source` was given). Errors are
 * `{ error: { code, message, errors: [{ reason }], status } }`.
 */
import type { TranslationSettings } from "../../config/schema.ts";
import { baseLanguage, isTraditionalChinese, normalizeLanguage, subtag } from "../languages.ts";
import { callProvider, errorMessage } from "./call.ts";
import { baseUrl, callOptions, shapeError, type Provider, type ProviderDeps } from "./provider.ts";

export const GOOGLE_URL = "https://translation.googleapis.com";

/** 403 reasons: a quota used up for the day (not tried again), or too many requests (tried again). */
const QUOTA = /dailyLimitExceeded|quotaExceeded|"RESOURCE_EXHAUSTED"/;
const RATE = /userRateLimitExceeded|rateLimitExceeded/;

/** Google's codes: the language, but Chinese by script (`zh-CN`, `zh-TW`) and European Portuguese (`pt-PT`). */
export function googleLanguage(tag: string): string {
  const base = baseLanguage(tag);
  if (base === "zh") return isTraditionalChinese(tag) ? "zh-TW" : "zh-CN";
  if (base === "pt" && subtag(tag) === "PT") return "pt-PT";
  return base;
}

export function googleProvider(settings: TranslationSettings, deps: ProviderDeps): Provider {
  const url = `${baseUrl(settings.url ?? GOOGLE_URL)}/language/translate/v2?key=${encodeURIComponent(settings.api_key ?? "")}`;
  const options = callOptions(settings, deps, {
    provider: "google",
    errorText: (_, body) => errorMessage(body),
    quota: (status, body) => status === 403 && QUOTA.test(body),
    rateLimited: (status, body) => status === 403 && RATE.test(body),
    advice: (status, body) =>
      status === 400 && /key/i.test(body)
        ? "the key was refused: check api_key (an API key of a Google Cloud project with the Cloud Translation API enabled)"
        : status === 403
          ? QUOTA.test(body)
            ? "a quota of the Google Cloud project is used up: raise it in the Cloud console (IAM & Admin → Quotas), or wait"
            : "the key may not call the Cloud Translation API: enable the API for the key's project, and check the key's API restrictions"
          : undefined,
  });
  return {
    name: "google",
    maxBatch: 128,
    maxChars: 30_000,
    async translate(request, stopping) {
      const body: Record<string, unknown> = { q: request.texts, target: googleLanguage(request.target), format: request.markup ? "html" : "text" };
      if (request.source) body.source = googleLanguage(request.source);
      const answer = (await callProvider({ ...options, stopping }, () => ({
        url,
        init: { headers: { "content-type": "application/json" }, body: JSON.stringify(body) },
      }))) as { data?: { translations?: { translatedText?: unknown; detectedSourceLanguage?: unknown }[] } };
      const translations = answer?.data?.translations;
      if (!Array.isArray(translations) || translations.length !== request.texts.length || translations.some((t) => typeof t?.translatedText !== "string"))
        throw shapeError("google", "one data.translations[].translatedText per text");
      return {
        texts: translations.map((t) => t.translatedText as string),
        detected: translations.map((t) => (typeof t.detectedSourceLanguage === "string" ? normalizeLanguage(t.detectedSourceLanguage) : null)),
      };
    },
  };
}
