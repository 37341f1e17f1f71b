/**
 * Two walks over a parsed JSON value that hold however deep it is nested. JSON.parse takes a body
 * nested tens of thousands of levels deep, but JSON.stringify, and any recursive walk, then runs
 * out of stack (a RangeError, which would fail the whole webhook POST). These keep their own
 * stack instead of the call stack.
 */
import { createHash } from "node:crypto";

/** Whether the value is nested more than `limit` levels deep (a scalar is 0, `{}` and `[]` are 1). */
export function deeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth + 1 > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
    }
  }
  return false;
}

export interface BoundedJson {
  /** The first `limit` characters of the JSON text (all of it unless `truncated`). */
  text: string;
  truncated: boolean;
  /** The whole text's length in characters. */
  length: number;
  /** sha256 (hex) of the whole text, as JSON.stringify would have written it. */
  sha256: string;
}

/** The JSON text of a parsed JSON value, as JSON.stringify writes it, keeping only the first `limit` characters. */
export function boundedJson(value: unknown, limit: number): BoundedJson {
  const hash = createHash("sha256");
  let text = "";
  let length = 0;
  let pending = ""; // hashed in chunks: one update per token is slow on a large value
  const write = (s: string) => {
    if (length < limit) text += s.length <= limit - length ? s : s.slice(0, limit - length);
    length += s.length;
    pending += s;
    if (pending.length >= 65_536) {
      hash.update(pending);
      pending = "";
    }
  };
  interface Frame {
    values: unknown[];
    keys: string[] | null;
    next: number;
  }
  const stack: Frame[] = [];
  const open = (v: unknown) => {
    if (v === null || typeof v !== "object") return write(JSON.stringify(v) ?? "null");
    if (Array.isArray(v)) {
      write("[");
      stack.push({ values: v, keys: null, next: 0 });
    } else {
      const keys = Object.keys(v);
      write("{");
      stack.push({ values: keys.map((k) => (v as Record<string, unknown>)[k]), keys, next: 0 });
    }
  };
  open(value);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.values.length) {
      write(top.keys ? "}" : "]");
      stack.pop();
      continue;
    }
    if (top.next > 0) write(",");
    if (top.keys) write(`${JSON.stringify(top.keys[top.next])}:`);
    open(top.values[top.next++]);
  }
  hash.update(pending);
  return { text, truncated: length > limit, length, sha256: hash.digest("hex") };
}
