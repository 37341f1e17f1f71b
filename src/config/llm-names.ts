/**
 * Names an `llm` flow's settings refer to (docs/flows.md): the built-in tools the model may be
 * offered (`builtin_tools`), and the placeholders of `system_prompt`. They live here, below the
 * flows, so that the settings' checks (validate.ts) and the flow (src/flows/llm.ts) share them.
 */

/** The built-in tools, by the name the model sees (src/flows/llm-builtins.ts). */
export const LLM_BUILTIN_TOOLS = ["offer_quick_replies", "offer_buttons", "send_cards", "send_image", "handover", "end_session", "remember"] as const;
export type LlmBuiltinTool = (typeof LLM_BUILTIN_TOOLS)[number];

/** `{{name}}` placeholders of `system_prompt` (src/flows/llm-prompt.ts); `contact.*`, `profile.*` and `context.*` name fields. */
export const PROMPT_PLACEHOLDERS = ["first_name", "last_name", "locale", "timezone", "date", "time", "endpoint", "page_id", "language"] as const;
export const PROMPT_FIELD_PREFIXES = ["contact.", "profile.", "context."] as const;

/** The placeholders a prompt uses that are not known, in order of first use. */
export function unknownPlaceholders(template: string): string[] {
  const unknown: string[] = [];
  for (const match of template.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
    const name = match[1]!;
    const known =
      (PROMPT_PLACEHOLDERS as readonly string[]).includes(name) ||
      PROMPT_FIELD_PREFIXES.some((p) => name.startsWith(p) && /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/.test(name.slice(p.length)));
    if (!known && !unknown.includes(name)) unknown.push(name);
  }
  return unknown;
}
