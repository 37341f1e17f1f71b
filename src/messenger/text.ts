/**
 * Splitting long text into messages Messenger accepts. Prefer the end of a paragraph (LLM
 * answers), then of a sentence or line, then a space; only an unbroken run longer than the limit
 * is cut mid-word. Surrogate pairs (emoji) are never split.
 */
import { charLength } from "./limits.ts";

export interface SplitOptions {
  /** Keep paragraphs together where possible. */
  preferParagraphs?: boolean;
}

export function splitText(text: string, max: number, options: SplitOptions = {}): string[] {
  const chunks: string[] = [];
  let rest = text.trim();
  // More than `max` code points? Looking at 2·max UTF-16 units is enough to know.
  while (rest.length > max && charLength(rest.slice(0, 2 * max + 2)) > max) {
    const cut = cutIndex(rest, max, options);
    chunks.push(rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
  }
  if (rest) chunks.push(rest);
  return chunks;
}

/** Where to end the next chunk of `text` (UTF-16 index); the chunk has at most `max` code points. */
function cutIndex(text: string, max: number, options: SplitOptions): number {
  // Only the first `max` code points matter (at most 2·max UTF-16 units): never walk the whole text.
  const limit = Array.from(text.slice(0, 2 * max))
    .slice(0, max)
    .join("").length;
  // One character past the limit, so a space right after the last allowed character counts.
  const head = text.slice(0, limit + 1);
  const minimum = Math.floor(limit * 0.3); // no tiny first chunks

  const last = (pattern: RegExp, cutAfterMatch: boolean, from = minimum): number => {
    let found = -1;
    for (const m of head.matchAll(pattern)) {
      const cut = cutAfterMatch ? m.index + m[0].length : m.index;
      if (cut >= from && cut <= limit && cut > 0) found = cut;
    }
    return found;
  };

  const candidates = [
    options.preferParagraphs ? last(/\n[ \t]*\n/g, false) : -1,
    last(/[.!?…。！？]+["'’”)\]]*(?=\s)/g, true),
    last(/\n/g, false),
    last(/\s/g, false),
  ];
  for (const cut of candidates) if (cut > 0) return cut;
  // Only a short first chunk is possible: still better than cutting a word that would fit.
  const anyBreak = last(/\s/g, false, 1);
  if (anyBreak > 0) return anyBreak;
  // No break at all: cut at the limit (between code points, never inside a surrogate pair).
  return limit;
}
