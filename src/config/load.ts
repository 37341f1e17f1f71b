/**
 * Reading the settings file: TOML → `${ENV}` interpolation (interpolate.ts) → `<secret>_file`
 * (secret-files.ts) → unknown keys warned about (unknown-keys.ts) → strings coerced where numbers
 * or booleans belong (coerce.ts) → defaults → schema check (its messages: describe.ts) →
 * cross-field rules (validate.ts) → paths made absolute (paths.ts). Every problem is collected
 * with its key path before anything fails, so one `check` run shows them all.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { Value } from "@sinclair/typebox/value";
import { Settings } from "./schema.ts";
import { SettingsError, pointerToPath, type SettingsProblem } from "./problems.ts";
import { validateSettings } from "./validate.ts";
import { interpolate, type Env } from "./interpolate.ts";
import { resolveSecretFiles } from "./secret-files.ts";
import { unknownKeys } from "./unknown-keys.ts";
import { coerceScalars } from "./coerce.ts";
import { describeError, isSecretPointer } from "./describe.ts";
import { collectSecrets } from "./secrets.ts";
import { makePathsAbsolute } from "./paths.ts";
import { isPlainObject } from "./tree.ts";

export type { Env } from "./interpolate.ts";

export interface Config extends Settings {
  /** The settings file this came from; null for the built-in demo. */
  readonly file: string | null;
  /** Folder that relative paths in the settings are resolved against. */
  readonly dir: string;
  readonly demo: boolean;
  /** Every secret value, so the logger can keep them out of log lines. */
  readonly secrets: readonly string[];
  readonly warnings: readonly SettingsProblem[];
}

export const CONFIG_ENV = "MESSENGER_ENDPOINT_CONFIG";
export const DEFAULT_CONFIG_FILE = "messenger-endpoint.toml";

/**
 * Which settings file to use: `--config`, else `$MESSENGER_ENDPOINT_CONFIG`, else
 * `./messenger-endpoint.toml`. Returns null when none was named and the default does not exist
 * (serve then starts the demo). A file that was named but does not exist is an error.
 */
export function locateSettingsFile(flag: string | undefined, env: Env, cwd: string): string | null {
  if (flag !== undefined) return mustExist(resolve(cwd, flag), "--config");
  const fromEnv = env[CONFIG_ENV];
  if (fromEnv) return mustExist(resolve(cwd, fromEnv), `$${CONFIG_ENV}`);
  const fallback = resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(fallback) ? fallback : null;
}

function mustExist(file: string, source: string): string {
  if (!existsSync(file)) {
    throw new SettingsError(file, [{ path: "", message: `settings file not found (named by ${source}): ${file}` }]);
  }
  return file;
}

export function loadSettingsFile(file: string, env: Env = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new SettingsError(file, [{ path: "", message: `cannot read settings file: ${(error as Error).message}` }]);
  }
  return parseSettings(text, { file, env });
}

export interface ParseOptions {
  file?: string | null;
  env?: Env;
  /** Base folder for relative paths when there is no file (tests, demo). */
  dir?: string;
  demo?: boolean;
}

export function parseSettings(text: string, options: ParseOptions = {}): Config {
  const file = options.file ?? null;
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    // The first line of smol-toml's message is the reason; the rest is a code excerpt.
    const reason = error.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
    // The offending line is not repeated: it may hold a secret, and this message goes to logs.
    throw new SettingsError(file, [{ path: "", message: `not valid TOML (line ${error.line}, column ${error.column}): ${reason}` }]);
  }
  return resolveSettings(raw, options);
}

/** Turn an already-parsed settings tree into a Config (also used for the built-in demo). */
export function resolveSettings(raw: unknown, options: ParseOptions = {}): Config {
  const file = options.file ?? null;
  const env = options.env ?? process.env;
  const dir = options.dir ?? (file ? dirname(file) : process.cwd());
  const problems: SettingsProblem[] = [];
  const warnings: SettingsProblem[] = [];

  if (!isPlainObject(raw)) throw new SettingsError(file, [{ path: "", message: "the settings must be a TOML table" }]);

  const tree = interpolate(raw, [], env, problems) as Record<string, unknown>;
  // Keys that already have a problem (an unset variable, an unreadable secret file) need no second one.
  const reported = new Set<string>(problems.map((p) => p.path));
  resolveSecretFiles(tree, [], dir, problems, reported);
  unknownKeys(tree, Settings, [], warnings);

  coerceScalars(tree, Settings);
  const settings = Value.Default(Settings, structuredClone(tree)) as Settings;
  for (const p of problems) reported.add(p.path);
  for (const error of Value.Errors(Settings, settings)) {
    const path = pointerToPath(error.path);
    if (reported.has(path)) continue; // one message per key: "missing" says it all
    reported.add(path);
    problems.push({ path, message: describeError(error, isSecretPointer(error.path)) });
  }
  // Cross-field rules too, so that one run shows everything; on a tree that failed the schema
  // they may meet values of the wrong type, which only hides their own findings.
  try {
    for (const p of validateSettings(settings, dir)) if (!reported.has(p.path)) problems.push(p);
  } catch {
    if (problems.length === 0) throw new Error("settings validation failed unexpectedly");
  }
  if (problems.length > 0) throw new SettingsError(file, problems, warnings);

  return { ...makePathsAbsolute(settings, dir), file, dir, demo: options.demo ?? false, secrets: collectSecrets(settings), warnings };
}
