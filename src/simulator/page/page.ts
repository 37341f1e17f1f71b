/**
 * The simulator's chat page as the server sends it: chat.html with chat.css and chat.js inlined,
 * one document that loads nothing from elsewhere (no CDN; the only requests it makes go to this
 * server's /simulator/api). The three files are imported as text, so `bun build --compile` embeds
 * them in the binary (scripts/build.ts); editors and linters see them as what they are.
 */
import html from "./chat.html" with { type: "text" };
import css from "./chat.css" with { type: "text" };
import script from "./chat.js" with { type: "text" };

/** The tags of chat.html that name the style sheet and the script, replaced by their content. */
export const STYLE_TAG = '<link rel="stylesheet" href="chat.css">';
export const SCRIPT_TAG = '<script src="chat.js"></script>';

/**
 * `html` with `STYLE_TAG` and `SCRIPT_TAG` replaced by `css` and `js` inline. Throws when a tag is
 * not there exactly once, or when the content would end its element early: a page that is served
 * broken is found at start, not by a person looking at it.
 */
export function inlinePage(html: string, css: string, js: string): string {
  return replaceOnce(replaceOnce(html, STYLE_TAG, "<style>\n", css, "</style>"), SCRIPT_TAG, "<script>\n", js, "</script>");
}

function replaceOnce(html: string, tag: string, open: string, content: string, close: string): string {
  const parts = html.split(tag);
  if (parts.length !== 2)
    throw new Error(`the simulator page must contain ${tag} exactly once (it has it ${parts.length - 1} times): see src/simulator/page/chat.html`);
  if (content.toLowerCase().includes(close.slice(0, -1)))
    throw new Error(`the simulator page's inlined content must not contain ${close}: it would end the element early`);
  return parts[0] + open + content + close + parts[1];
}

export const SIMULATOR_PAGE = inlinePage(html, css, script);
