/**
 * What an `llm` flow (llm.ts) tells its model besides the user's text: the `system_prompt` with
 * the person in it (`{{first_name}}`, the date in the user's timezone …, names in
 * src/config/llm-names.ts), the facts the model remembered (llm-builtins.ts `remember`), and the
 * history bounded by turns and by an estimated token budget. Also how an answer is cut into
 * messages at paragraph boundaries.
 */
import type { FlowInput } from "./schema.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export const DEFAULT_HISTORY_TOKENS = 4_000;
export const DEFAULT_MESSAGE_MAX_CHARS = 640;

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/**
 * The user's UTC offset in hours: Facebook's profile gives `timezone` as a number (-5, 5.5);
 * a contact field may hold it as text. Null when unknown or out of range.
 */
export function utcOffsetHours(input: FlowInput): number | null {
  const raw = input.data.profile?.timezone ?? input.contact.timezone;
  const hours = typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : Number.NaN;
  return Number.isFinite(hours) && hours >= -14 && hours <= 14 ? hours : null;
}

/** `UTC+5:30`, `UTC-5`, `UTC`. */
function offsetName(hours: number): string {
  if (hours === 0) return "UTC";
  const abs = Math.abs(hours);
  const minutes = Math.round((abs % 1) * 60);
  return `UTC${hours < 0 ? "-" : "+"}${Math.floor(abs)}${minutes ? `:${String(minutes).padStart(2, "0")}` : ""}`;
}

/** The placeholders' values for this input at `now` (ms). */
export function promptValues(input: FlowInput, now: number): Record<string, string> {
  const profile = input.data.profile ?? {};
  const field = (name: string) => {
    const value = profile[name] ?? input.contact[name];
    return typeof value === "string" || typeof value === "number" ? String(value) : "";
  };
  const offset = utcOffsetHours(input);
  const local = new Date(now + (offset ?? 0) * 3_600_000);
  const hh = String(local.getUTCHours()).padStart(2, "0");
  const mm = String(local.getUTCMinutes()).padStart(2, "0");
  return {
    first_name: field("first_name"),
    last_name: field("last_name"),
    locale: field("locale") || input.locale,
    timezone: offsetName(offset ?? 0),
    date: `${DAYS[local.getUTCDay()]}, ${local.getUTCDate()} ${MONTHS[local.getUTCMonth()]} ${local.getUTCFullYear()}`,
    time: `${hh}:${mm}`,
    endpoint: input.endpoint_id,
    page_id: input.page_id,
    language: input.language,
  };
}

/** `template` with each `{{name}}` replaced; a field that is not set becomes "". */
export function renderPrompt(template: string, input: FlowInput, now: number): string {
  if (!template.includes("{{")) return template;
  const values = promptValues(input, now);
  const roots: Record<string, unknown> = { contact: input.contact, profile: input.data.profile ?? {}, context: input.context };
  return template.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (_, name: string) => {
    if (name in values) return values[name]!;
    const [root, ...path] = name.split(".");
    let value: unknown = roots[root!];
    for (const key of path) value = typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
    if (value === undefined || value === null) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  });
}

/** The facts of `remember`, as a part of the system message (empty when there are none). */
export function memoryPrompt(person: readonly string[], conversation: readonly string[]): string {
  const parts: string[] = [];
  if (person.length > 0) parts.push(`What you remembered about this person earlier:\n${person.map((f) => `- ${f}`).join("\n")}`);
  if (conversation.length > 0) parts.push(`What you remembered in this conversation:\n${conversation.map((f) => `- ${f}`).join("\n")}`);
  return parts.join("\n\n");
}

/** A message's size in tokens, estimated as OpenAI suggests for English: 4 characters a token, plus the message's framing. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4) + 4;
}

/**
 * The last `turns` turns (a user message and its answer each) whose estimated tokens fit in
 * `budget`: the oldest go first. `slice(-0)` would keep everything, hence the guard.
 */
export function boundHistory(messages: ChatMessage[], turns: number, budget: number): ChatMessage[] {
  const kept = turns > 0 ? messages.slice(-2 * turns) : [];
  let total = kept.reduce((sum, m) => sum + estimateTokens(m.content), 0);
  let start = 0;
  while (start < kept.length && total > budget) {
    total -= estimateTokens(kept[start]!.content);
    start++;
  }
  // A cut history never begins with an answer whose question was left out.
  if (start > 0 && kept[start]?.role === "assistant") start++;
  return kept.slice(start);
}

export function readHistory(value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) return [];
  return value.filter(
    (m): m is ChatMessage => typeof m === "object" && m !== null && (m.role === "user" || m.role === "assistant") && typeof m.content === "string",
  );
}

/**
 * An answer as messages: paragraphs (split at blank lines) joined while they fit in `max`
 * characters; a longer paragraph is a message of its own (the output conversion cuts text over
 * Messenger's 2,000 characters at sentence boundaries).
 */
export function splitParagraphs(text: string, max: number): string[] {
  const paragraphs = text
    .split(/\n[ \t]*\n/)
    .map((p) => p.trim())
    .filter((p) => p !== "");
  const messages: string[] = [];
  for (const paragraph of paragraphs) {
    const last = messages.at(-1);
    if (last !== undefined && last.length + 2 + paragraph.length <= max) messages[messages.length - 1] = `${last}\n\n${paragraph}`;
    else messages.push(paragraph);
  }
  return messages;
}

/** What the model reads for this input: the text, and what was attached. */
export function describeInput(input: FlowInput): string {
  if (input.source === "handover") {
    const back = input.handover as { status?: string; metadata?: string | null } | null;
    return `[the conversation came back to you from the team: ${back?.status ?? "completed"}${back?.metadata ? `, "${back.metadata}"` : ""}]`;
  }
  const parts = input.text ? [input.text] : [];
  for (const a of input.data.attachments ?? []) parts.push(`[${a.type}${a.url ? `: ${a.url}` : ""}]`);
  return parts.join("\n") || "[empty message]";
}
