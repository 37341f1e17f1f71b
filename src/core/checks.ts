/**
 * Checking values against TypeBox schemas at the boundary (webhook items, flow results, admin and
 * simulator bodies, transformer results), with one way of saying what is wrong: the first problem,
 * with its JSON path. Compiled checkers are cached per schema.
 */
import type { Static, TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { ValueErrorType, type ValueError } from "@sinclair/typebox/value";

export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

const compiledSchemas = new WeakMap<TSchema, TypeCheck<TSchema>>();

/** The compiled checker of a schema (compiled once). */
export function checker<T extends TSchema>(schema: T): TypeCheck<T> {
  let c = compiledSchemas.get(schema);
  if (!c) compiledSchemas.set(schema, (c = TypeCompiler.Compile(schema)));
  return c as TypeCheck<T>;
}

/** Checks a value: itself, or one sentence naming the first problem and its path. */
export function checkValue<T extends TSchema>(schema: T, value: unknown): Checked<Static<T>> {
  const check = checker(schema);
  if (check.Check(value)) return { ok: true, value: value as Static<T> };
  return { ok: false, problem: describeProblem(firstProblem(schema, value)) };
}

/** Parses JSON text and checks it: the value, or one sentence naming the first problem. */
export function checkJson<T extends TSchema>(schema: T, text: string): Checked<Static<T>> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, problem: "the body is not JSON" };
  }
  return checkValue(schema, value);
}

/** The first problem of a value that failed its schema, looking into unions (see `explain`). */
export function firstProblem(schema: TSchema, value: unknown): ValueError | undefined {
  return explain(checker(schema).Errors(value).First());
}

/** `path: message`, or `unknown property path` for a property the schema does not allow. */
export function describeProblem(error: ValueError | undefined): string {
  const path = error?.path || "/";
  if (error?.message === "Unexpected property") return `unknown property ${path}`;
  return `${path}: ${error?.message ?? "unexpected shape"}`;
}

/**
 * A union error ("Expected union value") says little. Look into the variants: the one whose
 * `type` matched tells what is really missing (`/outputs/0/buttons/0/payload: Expected required
 * property`).
 */
function explain(error: ValueError | undefined): ValueError | undefined {
  if (!error || error.type !== ValueErrorType.Union) return error;
  const variants = (error.schema.anyOf ?? []) as { properties?: { type?: { const?: unknown } } }[];
  const given = (error.value as { type?: unknown } | null)?.type;
  const matched = variants.findIndex((v) => v.properties?.type?.const !== undefined && v.properties.type.const === given);
  // No `type` at all: the first variant is the default kind (a text quick reply, a postback button).
  const index = matched >= 0 ? matched : given === undefined ? 0 : -1;
  return index >= 0 ? (explain(error.errors[index]?.First()) ?? error) : error;
}
