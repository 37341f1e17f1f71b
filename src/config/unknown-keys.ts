/** Keys the schema does not know: warnings (the settings still load), with a "did you mean" for near misses. */
import { Kind, type TSchema } from "@sinclair/typebox";
import { closest, joinPath, type SettingsProblem } from "./problems.ts";
import { isPlainObject, type KeyPath } from "./tree.ts";

export function unknownKeys(value: unknown, schema: TSchema, path: KeyPath, warnings: SettingsProblem[]): void {
  if (Array.isArray(value) && schema.type === "array" && schema.items) {
    for (const [i, v] of value.entries()) unknownKeys(v, schema.items as TSchema, [...path, i], warnings);
    return;
  }
  if (!isPlainObject(value) || (schema[Kind] !== "Object" && schema[Kind] !== "Record")) return;
  if (schema[Kind] === "Record") {
    const valueSchema = Object.values(schema.patternProperties ?? {})[0] as TSchema | undefined;
    if (valueSchema) for (const [k, v] of Object.entries(value)) unknownKeys(v, valueSchema, [...path, k], warnings);
    return;
  }
  const properties = schema.properties as Record<string, TSchema>;
  for (const [key, v] of Object.entries(value)) {
    const child = properties[key];
    if (child) {
      unknownKeys(v, child, [...path, key], warnings);
      continue;
    }
    const guess = closest(key, Object.keys(properties));
    warnings.push({
      path: joinPath([...path, key]),
      message: `unknown key, ignored${guess ? ` (did you mean "${guess}"?)` : ""}`,
    });
  }
}
