/** Calling the admin API of a test conversation with a bearer key. */
import type { Conversation } from "./conversation.ts";

export const KEY = "test-admin-key-0123456789";
export const WITH_KEYS = { extra: `[admin]\napi_keys = ["${KEY}"]` };

export interface ApiAnswer {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

/** Calls the admin API; `key: null` sends no Authorization header; a string body is sent as is. */
export async function api(
  c: Conversation,
  method: string,
  path: string,
  options: { body?: unknown; key?: string | null; authorization?: string } = {},
): Promise<ApiAnswer> {
  const headers: Record<string, string> = {};
  const key = options.key === undefined ? KEY : options.key;
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  else if (key !== null) headers.authorization = `Bearer ${key}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
  }
  const response = await fetch(`${c.url}${path}`, { method, headers, body });
  const text = await response.text();
  let parsed: any = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}
