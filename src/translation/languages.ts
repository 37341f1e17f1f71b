/**
 * Language tags. The settings, Facebook's profile (`fr_FR`) and the providers each spell a
 * language their own way; inside, a language is a BCP 47 tag in its usual case (`de`, `en-US`,
 * `pt-BR`, `zh-Hant`), and each provider turns it into its own code (providers/*.ts).
 */

/** `en_us` → `en-US`, `ZH-HANT` → `zh-Hant`, `DE` → `de`; null for what is not a language tag. */
export function normalizeLanguage(tag: string): string | null {
  const parts = tag.trim().split(/[-_]/);
  const base = parts[0]!.toLowerCase();
  if (!/^[a-z]{2,3}$/.test(base) || base === "und") return null;
  const second = parts[1];
  if (second === undefined || !/^[A-Za-z0-9]{2,8}$/.test(second)) return base;
  if (/^[A-Za-z]{4}$/.test(second)) return `${base}-${second[0]!.toUpperCase()}${second.slice(1).toLowerCase()}`;
  if (/^([A-Za-z]{2}|\d{3})$/.test(second)) return `${base}-${second.toUpperCase()}`;
  return `${base}-${second.toLowerCase()}`;
}

/** The language without region or script: `pt-BR` → `pt`. */
export function baseLanguage(tag: string): string {
  return tag.split("-")[0]!;
}

/** The region or script of a tag (`BR` of `pt-BR`, `Hant` of `zh-Hant`), or null. */
export function subtag(tag: string): string | null {
  return tag.split("-")[1] ?? null;
}

/** Chinese in traditional characters (`zh-Hant`, `zh-TW`, `zh-HK`, `zh-MO`), else simplified. */
export function isTraditionalChinese(tag: string): boolean {
  return baseLanguage(tag) === "zh" && ["Hant", "TW", "HK", "MO"].includes(subtag(tag) ?? "");
}

/**
 * Whether a text in `a` needs no translation for a reader of `b`: the same language (`en-US` and
 * `en-GB` read each other); Chinese also in the same script.
 */
export function sameLanguage(a: string, b: string): boolean {
  if (baseLanguage(a) !== baseLanguage(b)) return false;
  return baseLanguage(a) !== "zh" || isTraditionalChinese(a) === isTraditionalChinese(b);
}
