/**
 * HTML in what users type: removed before the flow sees it (`sanitize_input`), or kept as text in
 * transcripts so that a viewer does not load or follow it (`hide_external_references`).
 * Messenger itself shows text as text; these protect whatever the operator feeds the text to (a
 * web view, an agent console, an LLM told to render HTML).
 */

/** A tag (`<b>`, `</a>`, `<img …/>`) or a comment; a lone `<` (`a < b`) is no tag. */
const TAG = /<!--[\s\S]*?-->|<\/?[a-zA-Z][^>]*>/g;
/** Elements whose content is code, not text: removed with their content. */
const CODE = /<(script|style|iframe|object|embed|noscript|template)\b[^>]*>[\s\S]*?<\/\1\s*>/gi;

/** The text without HTML tags, comments or script/style content; `a < b` stays as it is. */
export function stripHtml(text: string): string {
  if (!text.includes("<")) return text;
  return text
    .replace(CODE, "")
    .replace(TAG, "")
    .replace(/<(script|style|iframe|object|embed|noscript|template)\b[^>]*>/gi, "");
}

/** Links and images as text: `<a href="…">` and `<img src="…">` tags with their brackets escaped. */
export function referencesAsText(text: string): string {
  if (!text.includes("<")) return text;
  return text.replace(/<\/?(a|img)\b[^>]*>/gi, (tag) => tag.replace(/</g, "&lt;").replace(/>/g, "&gt;"));
}
