/**
 * The no-translation marker (`marker`, default `**`): text between two markers is kept as it is
 * (a brand, a code, a name) and the markers are removed — `Welcome to **Acme Store**!` →
 * `Willkommen bei Acme Store!`. A marker without its pair is ordinary text.
 *
 * What is kept reaches the provider as `<span translate="no" class="notranslate">…</span>` in its
 * HTML mode, which every provider leaves untranslated (DeepL `tag_handling=html`, Google
 * `format=html`, Microsoft `textType=html`, LibreTranslate `format=html`; the LLM is told so);
 * the kept text is then put back from the original, not from the answer, so it is exact.
 */

export interface Segment {
  text: string;
  /** Between two markers: not translated. */
  keep: boolean;
}

/** The text cut at its markers; an unpaired last marker stays in the text. */
export function segments(text: string, marker: string): Segment[] {
  const parts = text.split(marker);
  if (parts.length < 3) return [{ text, keep: false }];
  const out: Segment[] = [];
  // parts alternate: outside, inside, outside ...; an even count means the last marker is unpaired.
  const paired = parts.length % 2 === 1 ? parts.length : parts.length - 1;
  for (let i = 0; i < paired; i++) if (parts[i]) out.push({ text: parts[i]!, keep: i % 2 === 1 });
  if (paired < parts.length) {
    const tail = `${marker}${parts[paired]}`;
    const last = out.at(-1);
    if (last && !last.keep) last.text += tail;
    else out.push({ text: tail, keep: false });
  }
  return out;
}

/** The text without its markers (what the user reads when nothing is translated). */
export function withoutMarkers(text: string, marker: string): string {
  return segments(text, marker)
    .map((s) => s.text)
    .join("");
}

/** Whether the provider has anything to translate: some text outside markers that is more than spaces and punctuation. */
export function needsTranslation(parts: Segment[]): boolean {
  return parts.some((s) => !s.keep && /\p{L}/u.test(s.text));
}

const KEEP_OPEN = '<span translate="no" class="notranslate">';
const KEEP_CLOSE = "</span>";

/** The text for a provider's HTML mode: escaped, kept parts in no-translate spans, line breaks as `<br>`. */
export function toMarkup(parts: Segment[]): string {
  return parts.map((s) => (s.keep ? `${KEEP_OPEN}${escapeHtml(s.text)}${KEEP_CLOSE}` : escapeHtml(s.text))).join("");
}

/**
 * A provider's HTML answer back to text: each no-translate span replaced by the original kept
 * text (in order; when the provider returned another number of spans, by what it returned),
 * `<br>` back to line breaks, other tags dropped, entities decoded.
 */
export function fromMarkup(html: string, parts: Segment[]): string {
  const kept = parts.filter((s) => s.keep).map((s) => s.text);
  const spans = [...html.matchAll(/<span\b[^>]*>([\s\S]*?)<\/span>/gi)];
  let i = 0;
  const restored = html.replace(/<span\b[^>]*>([\s\S]*?)<\/span>/gi, (_, inner: string) =>
    // A placeholder (private-use characters) the decoding below leaves alone, replaced at the end.
    spans.length === kept.length ? `\uE000${i++}\uE001` : inner,
  );
  const text = decodeHtml(restored.replace(/<br\s*\/?>/gi, "\n").replace(/<\/?[a-z][^>]*>/gi, ""));
  return text.replace(/\uE000(\d+)\uE001/g, (_, n: string) => kept[Number(n)] ?? "");
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/\n/g, "<br>");
}

const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

/** `&amp;`, `&#39;`, `&#x27;` … back to characters (Google's HTML answers use numeric entities). */
export function decodeHtml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (entity, body: string) => {
    if (body[0] === "#") {
      const code = body[1] === "x" || body[1] === "X" ? Number.parseInt(body.slice(2), 16) : Number(body.slice(1));
      return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : entity;
    }
    return NAMED[body.toLowerCase()] ?? entity;
  });
}
