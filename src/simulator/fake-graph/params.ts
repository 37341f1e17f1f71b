/**
 * Reading a Graph request as Graph does: the body as JSON, urlencoded or multipart form, values
 * that look like JSON parsed (Graph's convention for form and query values).
 */
import { graphFail } from "./graph-errors.ts";

export function isObject(value: unknown): value is Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A form or query value: JSON when it looks like an object or array (Graph's convention), else the string. */
export function jsonish(value: string): unknown {
  const t = value.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      return JSON.parse(t);
    } catch {
      return value;
    }
  }
  return value;
}

/** A path segment, percent-decoded when it can be. */
export function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** JSON, urlencoded (JSON-string values) or multipart bodies; `undefined` when there is none. */
export async function parseBody(request: Request): Promise<unknown> {
  if (request.method === "GET" || request.method === "HEAD") return undefined;
  const type = (request.headers.get("content-type") ?? "").toLowerCase();
  if (type.startsWith("multipart/form-data")) {
    const form = await request.formData();
    const out: Record<string, unknown> = {};
    for (const [key, value] of form.entries()) {
      out[key] = typeof value === "string" ? jsonish(value) : { filename: value.name, type: value.type, size: value.size };
    }
    return out;
  }
  const text = await request.text();
  if (text === "") return undefined;
  if (type.startsWith("application/x-www-form-urlencoded")) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of new URLSearchParams(text)) out[key] = jsonish(value);
    return out;
  }
  try {
    return JSON.parse(text);
  } catch {
    graphFail(100, "(#100) The request body is not valid JSON");
  }
}
