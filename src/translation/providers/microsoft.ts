/**
 * Microsoft Translator (Azure AI Translator, v3): `POST {host}/translate?api-version=3.0&to=<lang>`
 * (`&from=` when the language is known, `&textType=html` for markup) with the headers
 * `Ocp-Apim-Subscription-Key` and, for a regional or multi-service resource,
 * `Ocp-Apim-Subscription-Region`; the body is `[{ "Text": "…" }, …]` and the answer
 * `[{ detectedLanguage?: { language, score }, translations: [{ text, to }] }, …]` in the same
 * order. Errors are `{ error: { code, message } }` (401000 a refused key, 403001 the free tier's
 * quota used up, 429xxx too many requests).
 */
import type { TranslationSettings } from "../../config/schema.ts";
import { baseLanguage, isTraditionalChinese, normalizeLanguage, subtag } from "../languages.ts";
import { callProvider, errorMessage } from "./call.ts";
import { baseUrl, callOptions, shapeError, type Provider, type ProviderDeps } from "./provider.ts";

export const MICROSOFT_URL = "https://api.cognitive.microsofttranslator.com";

/** Microsoft's codes: the language, Chinese by script (`zh-Hans`, `zh-Hant`), `pt-pt` for European Portuguese, `fr-ca` for Canadian French. */
export function microsoftLanguage(tag: string): string {
  const base = baseLanguage(tag);
  if (base === "zh") return isTraditionalChinese(tag) ? "zh-Hant" : "zh-Hans";
  if ((base === "pt" && subtag(tag) === "PT") || (base === "fr" && subtag(tag) === "CA")) return tag.toLowerCase();
  return base;
}

export function microsoftProvider(settings: TranslationSettings, deps: ProviderDeps): Provider {
  const base = `${baseUrl(settings.url ?? MICROSOFT_URL)}/translate?api-version=3.0`;
  const headers: Record<string, string> = { "ocp-apim-subscription-key": settings.api_key ?? "", "content-type": "application/json" };
  if (settings.region) headers["ocp-apim-subscription-region"] = settings.region;
  const options = callOptions(settings, deps, {
    provider: "microsoft",
    errorText: (_, body) => errorMessage(body),
    quota: (status, body) => status === 403 && /"code"\s*:\s*4030/.test(body),
    advice: (status, body) =>
      status === 401
        ? "the key was refused: check api_key, and region for a regional or multi-service resource (Keys and Endpoint in the Azure portal)"
        : status === 403 && /"code"\s*:\s*4030/.test(body)
          ? "the resource's quota is used up (the free tier's characters this month): move it to a paid tier, or wait"
          : undefined,
  });
  return {
    name: "microsoft",
    maxBatch: 1000,
    maxChars: 50_000,
    async translate(request, stopping) {
      let url = `${base}&to=${encodeURIComponent(microsoftLanguage(request.target))}`;
      if (request.source) url += `&from=${encodeURIComponent(microsoftLanguage(request.source))}`;
      if (request.markup) url += "&textType=html";
      const body = JSON.stringify(request.texts.map((text) => ({ Text: text })));
      const answer = (await callProvider({ ...options, stopping }, () => ({ url, init: { headers, body } }))) as {
        detectedLanguage?: { language?: unknown };
        translations?: { text?: unknown }[];
      }[];
      if (!Array.isArray(answer) || answer.length !== request.texts.length || answer.some((a) => typeof a?.translations?.[0]?.text !== "string"))
        throw shapeError("microsoft", "one [].translations[0].text per text");
      return {
        texts: answer.map((a) => a.translations![0]!.text as string),
        detected: answer.map((a) => (typeof a.detectedLanguage?.language === "string" ? normalizeLanguage(a.detectedLanguage.language) : null)),
      };
    },
  };
}
