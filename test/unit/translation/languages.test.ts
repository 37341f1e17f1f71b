/** Language tags (src/translation/languages.ts), each provider's codes, and the votes of auto-detection (user-language.ts). */
import { describe, expect, test } from "bun:test";
import { normalizeLanguage, sameLanguage } from "../../../src/translation/languages.ts";
import { deeplSource, deeplTarget } from "../../../src/translation/providers/deepl.ts";
import { googleLanguage } from "../../../src/translation/providers/google.ts";
import { libreLanguage } from "../../../src/translation/providers/libretranslate.ts";
import { microsoftLanguage } from "../../../src/translation/providers/microsoft.ts";
import { withDetection } from "../../../src/translation/user-language.ts";

describe("tags", () => {
  test("normalized: language lower case, region upper case, script title case", () => {
    expect(normalizeLanguage("en_us")).toBe("en-US");
    expect(normalizeLanguage("DE")).toBe("de");
    expect(normalizeLanguage("fr_FR")).toBe("fr-FR");
    expect(normalizeLanguage("ZH-HANT")).toBe("zh-Hant");
    expect(normalizeLanguage("es-419")).toBe("es-419");
    expect(normalizeLanguage("und")).toBeNull();
    expect(normalizeLanguage("")).toBeNull();
    expect(normalizeLanguage("12")).toBeNull();
  });

  test("the same language: regions read each other, Chinese scripts do not", () => {
    expect(sameLanguage("en-US", "en-GB")).toBe(true);
    expect(sameLanguage("en", "de")).toBe(false);
    expect(sameLanguage("zh", "zh-CN")).toBe(true);
    expect(sameLanguage("zh-Hans", "zh-TW")).toBe(false);
  });
});

describe("each provider's codes", () => {
  test("DeepL: sources without variants; targets EN-US/EN-GB, PT-BR/PT-PT, ZH-HANS/ZH-HANT", () => {
    expect(["en-GB", "pt-BR", "zh-Hant", "de"].map(deeplSource)).toEqual(["EN", "PT", "ZH", "DE"]);
    expect(["en", "en-GB", "en-US", "pt", "pt-PT", "zh", "zh-TW", "de-AT"].map(deeplTarget)).toEqual([
      "EN-US",
      "EN-GB",
      "EN-US",
      "PT-BR",
      "PT-PT",
      "ZH-HANS",
      "ZH-HANT",
      "DE",
    ]);
  });

  test("Google: zh-CN/zh-TW and pt-PT; Microsoft: zh-Hans/zh-Hant, pt-pt, fr-ca; LibreTranslate: zt for traditional Chinese", () => {
    expect(["zh", "zh-Hant", "pt-PT", "pt-BR", "en-US"].map(googleLanguage)).toEqual(["zh-CN", "zh-TW", "pt-PT", "pt", "en"]);
    expect(["zh", "zh-HK", "pt-PT", "fr-CA", "de-CH"].map(microsoftLanguage)).toEqual(["zh-Hans", "zh-Hant", "pt-pt", "fr-ca", "de"]);
    expect(["zh", "zh-TW", "de-AT"].map(libreLanguage)).toEqual(["zh", "zt", "de"]);
  });
});

describe("auto-detection: votes, the lock, an input counted once", () => {
  const T = 1_767_225_700_000;

  test("the language with most votes; a tie goes to the latest; locked at lock_after", () => {
    let state = withDetection(null, "de", "m1", 3, T);
    expect(state).toEqual({ language: "de", votes: { de: 1 }, inputs: 1, lockedAt: null, lastMid: "m1" });
    state = withDetection(state, "en", "m2", 3, T + 1); // a tie: the latest
    expect(state.language).toBe("en");
    state = withDetection(state, "de", "m3", 3, T + 2);
    expect(state).toEqual({ language: "de", votes: { de: 2, en: 1 }, inputs: 3, lockedAt: T + 2, lastMid: "m3" });
    expect(withDetection(state, "fr", "m4", 3, T + 3)).toBe(state); // locked: unchanged
  });

  test("one short 'ok' does not switch a German speaker", () => {
    let state = withDetection(null, "de", "a", 5, T);
    state = withDetection(state, "de", "b", 5, T);
    state = withDetection(state, "en", "c", 5, T);
    expect(state.language).toBe("de");
  });

  test("the same message again (a turn run again after a crash) is not counted twice", () => {
    const state = withDetection(null, "de", "m1", 2, T);
    expect(withDetection(state, "de", "m1", 2, T)).toBe(state);
  });
});
