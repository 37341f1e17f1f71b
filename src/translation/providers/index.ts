/** The provider of `[endpoints.translation] provider`, or null for `none`. */
import type { TranslationSettings } from "../../config/schema.ts";
import { deeplProvider } from "./deepl.ts";
import { googleProvider } from "./google.ts";
import { libreTranslateProvider } from "./libretranslate.ts";
import { llmProvider } from "./llm.ts";
import { microsoftProvider } from "./microsoft.ts";
import type { Provider, ProviderDeps } from "./provider.ts";

export type { Provider, ProviderDeps, TranslateAnswer, TranslateRequest } from "./provider.ts";
export { ProviderError, type CallResult } from "./call.ts";

export function createProvider(settings: TranslationSettings, deps: ProviderDeps): Provider | null {
  switch (settings.provider) {
    case "none":
      return null;
    case "deepl":
      return deeplProvider(settings, deps);
    case "google":
      return googleProvider(settings, deps);
    case "microsoft":
      return microsoftProvider(settings, deps);
    case "libretranslate":
      return libreTranslateProvider(settings, deps);
    case "llm":
      return llmProvider(settings, deps);
  }
}
