/**
 * Send API limits, as Meta documents them for the Send API. The converter respects them so that nothing a
 * flow returns is rejected for a limit we could have kept; the fake Graph API enforces them.
 * Lengths are counted in Unicode code points.
 */
export const TEXT_MAX = 2000;
export const METADATA_MAX = 1000;
export const QUICK_REPLIES_MAX = 13;
export const QUICK_REPLY_TITLE_MAX = 20;
export const PAYLOAD_MAX = 1000;
export const BUTTONS_MAX = 3;
export const BUTTON_TITLE_MAX = 20;
export const BUTTON_TEMPLATE_TEXT_MAX = 640;
export const GENERIC_ELEMENTS_MAX = 10;
export const ELEMENT_TITLE_MAX = 80;
export const ELEMENT_SUBTITLE_MAX = 80;

/** Length in code points, the way Messenger counts characters. */
export function charLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** Cuts to at most `max` code points, ending with "…" when something was cut. */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}
