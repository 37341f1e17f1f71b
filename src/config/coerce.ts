/**
 * Strings where numbers or booleans belong: `port = "${PORT}"` is a string after interpolation.
 * Where the schema wants a number or a boolean and the whole string is exactly one, it becomes
 * one; anything else is left for the schema check to report.
 */
import { Kind, type TSchema } from "@sinclair/typebox";
import { isPlainObject } from "./tree.ts";

/** Coerces the tree's values in place, following the schema. */
export function coerceScalars(value: unknown, schema: TSchema): void {
  if (Array.isArray(value) && schema.type === "array" && schema.items) {
    value.forEach((v, i) => {
      const coerced = coerceScalar(v, schema.items as TSchema);
      if (coerced !== undefined) value[i] = coerced;
      else coerceScalars(v, schema.items as TSchema);
    });
    return;
  }
  if (!isPlainObject(value)) return;
  const children: [string, TSchema][] =
    schema[Kind] === "Record"
      ? Object.keys(value).map((k) => [k, Object.values(schema.patternProperties ?? {})[0] as TSchema])
      : Object.entries((schema.properties ?? {}) as Record<string, TSchema>);
  for (const [key, child] of children) {
    if (!child || !(key in value)) continue;
    const coerced = coerceScalar(value[key], child);
    if (coerced !== undefined) value[key] = coerced;
    else coerceScalars(value[key], child);
  }
}

function coerceScalar(value: unknown, schema: TSchema): number | boolean | undefined {
  if (typeof value !== "string") return undefined;
  if (schema.type === "integer" && /^-?\d+$/.test(value)) return Number(value);
  if (schema.type === "number" && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (schema.type === "boolean" && (value === "true" || value === "false")) return value === "true";
  return undefined;
}
