/** The settings as parsed from TOML, before the schema check: plain objects, lists and values. */

/** A key path into the tree: `["endpoints", 0, "pages"]` (config/problems.ts `joinPath` writes it). */
export type KeyPath = (string | number)[];

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
