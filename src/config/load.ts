/**
 * Reading the settings file: TOML → `${ENV}` interpolation → `<secret>_file` → defaults →
 * schema check → cross-field rules → paths made absolute. Every problem is collected with its key
 * path before anything fails, so one `check` run shows them all.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { Kind, type TSchema } from "@sinclair/typebox";
import { parse as parseToml, TomlError } from "smol-toml";
import { Value, ValueErrorType, type ValueError } from "@sinclair/typebox/value";
import { SECRET_KEYS, Settings, type FlowSettings } from "./schema.ts";
import { SettingsError, closest, joinPath, pointerToPath, type SettingsProblem } from "./problems.ts";
import { validateSettings } from "./validate.ts";
import { displayUrl, redactUrlCredentials, urlSecrets } from "../log/scrub.ts";

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

export type Env = Record<string, string | undefined>;

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
  const secrets = new Set<string>();
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
    problems.push({ path, message: describe(error, isSecretPointer(error.path)) });
  }
  // Cross-field rules too, so that one run shows everything; on a tree that failed the schema
  // they may meet values of the wrong type, which only hides their own findings.
  try {
    for (const p of validateSettings(settings, dir)) if (!reported.has(p.path)) problems.push(p);
  } catch {
    if (problems.length === 0) throw new Error("settings validation failed unexpectedly");
  }
  if (problems.length > 0) throw new SettingsError(file, problems, warnings);

  collectSecrets(settings, secrets);
  const config: Config = { ...makePathsAbsolute(settings, dir), file, dir, demo: options.demo ?? false, secrets: [...secrets], warnings };
  return config;
}

// --- ${ENV} -------------------------------------------------------------------------------

const ENV_PATTERN = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replace `${NAME}` (and `${NAME:-default}`) in every string value; `$${` is a literal `${`. */
export function interpolate(value: unknown, path: (string | number)[], env: Env, problems: SettingsProblem[]): unknown {
  if (typeof value === "string") {
    return value.replace(ENV_PATTERN, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === "$${") return "${";
      const found = env[name!];
      if (found !== undefined && found !== "") return found;
      if (fallback !== undefined) return fallback;
      problems.push({
        path: joinPath(path),
        message: `environment variable ${name} is not set: export it, or write \${${name}:-default}`,
      });
      return "";
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, [...path, i], env, problems));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, [...path, k], env, problems);
    return out;
  }
  return value;
}

// --- <secret>_file ---------------------------------------------------------------------------

function resolveSecretFiles(
  value: unknown,
  path: (string | number)[],
  dir: string,
  problems: SettingsProblem[],
  reported: Set<string>,
): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => resolveSecretFiles(v, [...path, i], dir, problems, reported));
    return;
  }
  if (!isPlainObject(value)) return;
  for (const key of Object.keys(value)) {
    const base = key.endsWith("_file") ? key.slice(0, -"_file".length) : null;
    if (base && (SECRET_KEYS as readonly string[]).includes(base)) {
      const keyPath = joinPath([...path, key]);
      const fileName = value[key];
      const problem = (message: string) => {
        problems.push({ path: keyPath, message });
        reported.add(joinPath([...path, base])); // not also "<base>: missing"
      };
      delete value[key];
      if (value[base] !== undefined) {
        problem(`set either ${base} or ${key}, not both`);
        continue;
      }
      if (typeof fileName !== "string" || fileName === "") {
        problem("expected the path of a file holding the secret");
        continue;
      }
      const secretPath = resolve(dir, fileName);
      let content: string;
      try {
        content = readFileSync(secretPath, "utf8");
      } catch (error) {
        problem(`cannot read ${secretPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        continue;
      }
      if (base === "api_keys") {
        value[base] = content
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter((l) => l && !l.startsWith("#"));
      } else {
        const secret = content.replace(/\r?\n$/, "");
        if (!secret) problem(`${secretPath} is empty`);
        value[base] = secret;
      }
    } else {
      resolveSecretFiles(value[key], [...path, key], dir, problems, reported);
    }
  }
}

/**
 * Every secret value, for the logger and for scrubbing stored errors. Besides the secret keys this
 * takes the password and credential-like query values of configured URLs (flows' `url`,
 * `storage.url`, `graph.url`; see log/scrub.ts `urlSecrets`): messages show those URLs only in
 * their display form, and these values are removed wherever else they turn up (an agent's error
 * page quoting its own key, say).
 */
function collectSecrets(settings: Settings, secrets: Set<string>): void {
  const add = (s: string | undefined) => s && secrets.add(s);
  for (const key of settings.admin.api_keys) add(key);
  add(settings.storage.auth_token);
  for (const s of urlSecrets(settings.storage.url)) add(s);
  for (const s of urlSecrets(settings.graph.url)) add(s);
  for (const flow of Object.values(settings.flows)) for (const s of flowSecrets(flow)) add(s);
  for (const endpoint of settings.endpoints) {
    add(endpoint.app_secret);
    add(endpoint.verify_token);
    for (const page of endpoint.pages) add(page.access_token);
  }
}

/** Header names whose values are credentials (`Authorization`, `X-Api-Key`, `X-Auth-Token` ...). */
const SECRET_HEADER = /authorization|token|key|secret/i;

/** A flow's secrets: its `api_key`, the values of headers that carry credentials, its URL's password and keys. */
export function flowSecrets(flow: FlowSettings): string[] {
  const found: string[] = [];
  if (flow.api_key) found.push(flow.api_key);
  for (const [name, header] of Object.entries(flow.headers ?? {})) {
    if (SECRET_HEADER.test(name)) found.push(header, header.replace(/^(Bearer|Basic|Token)\s+/i, ""));
  }
  if (flow.url) found.push(...urlSecrets(flow.url));
  return found.filter((s) => s !== "");
}

// --- unknown keys ----------------------------------------------------------------------------

function unknownKeys(value: unknown, schema: TSchema, path: (string | number)[], warnings: SettingsProblem[]): void {
  if (Array.isArray(value) && schema.type === "array" && schema.items) {
    value.forEach((v, i) => unknownKeys(v, schema.items as TSchema, [...path, i], warnings));
    return;
  }
  if (!isPlainObject(value) || schema[Kind] !== "Object" && schema[Kind] !== "Record") return;
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

// --- strings where numbers or booleans belong ---------------------------------------------

/**
 * `port = "${PORT}"` is a string after interpolation. Where the schema wants a number or a
 * boolean and the whole string is exactly one, it becomes one; anything else is left for the
 * schema check to report.
 */
function coerceScalars(value: unknown, schema: TSchema): void {
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

// --- messages --------------------------------------------------------------------------------

/**
 * `secret`: the value sits where a secret goes, so the message names its type only ("expected a
 * string, got a number"): `verify_token = 12345` must not put 12345 on the screen or in a log.
 */
function describe(error: ValueError, secret: boolean): string {
  const got = secret ? describeType(error.value) : describeValue(error.value);
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return "missing";
    case ValueErrorType.Union: {
      const options = (error.schema.anyOf as TSchema[] | undefined)?.map((s) => JSON.stringify(s.const));
      return options ? `expected one of ${options.join(", ")}, got ${got}` : `unexpected value ${got}`;
    }
    case ValueErrorType.String:
      return `expected a string, got ${got}${typeof error.value === "number" || typeof error.value === "boolean" ? ": write it in quotes" : ""}`;
    case ValueErrorType.Boolean:
      return `expected true or false, got ${got}`;
    case ValueErrorType.Integer:
      return `expected a whole number, got ${got}`;
    case ValueErrorType.Number:
      return `expected a number, got ${got}`;
    case ValueErrorType.Array:
      return `expected a list, got ${got}`;
    case ValueErrorType.Object:
      return `expected a table, got ${got}`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `must be at least ${error.schema.minimum}, got ${got}`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `must be at most ${error.schema.maximum}, got ${got}`;
    case ValueErrorType.StringMinLength:
      return error.schema.minLength === 1 ? "must not be empty" : `must be at least ${error.schema.minLength} characters long`;
    case ValueErrorType.ArrayMinItems:
      return `needs at least ${error.schema.minItems} item${error.schema.minItems === 1 ? "" : "s"}`;
    case ValueErrorType.ObjectAdditionalProperties:
      return "names may contain only letters, digits, - and _";
    case ValueErrorType.StringPattern:
      return `${got} does not match ${patternHint(String(error.schema.pattern))}`;
    default:
      return `${error.message}, got ${got}`;
  }
}

function patternHint(pattern: string): string {
  switch (pattern) {
    case "^[0-9]+$":
      return "the expected form (digits only)";
    case "^https?://":
      return "the expected form (an http:// or https:// URL)";
    case "^(page_inbox|[0-9]+)$":
      return 'the expected form ("page_inbox" or an app id, digits only)';
    case "^[^\\s/?#@\\\\]+$":
      return 'the expected form (a host name such as "sim.example.com", without scheme or path)';
    case "^v\\d+\\.\\d+$":
      return 'the expected form (a Graph API version such as "v26.0")';
    default:
      return `the pattern ${pattern}`;
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") {
    // A URL may carry a password or a key (`https://user:pass@host/?code=…`): shown without them.
    const shown = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? displayUrl(value) : redactUrlCredentials(value);
    return JSON.stringify(shown.length > 40 ? shown.slice(0, 40) + "…" : shown);
  }
  if (Array.isArray(value)) return "a list";
  if (isPlainObject(value)) return "a table";
  return String(value);
}

/** What kind of value this is, without the value: for secrets. */
function describeType(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return "a string";
  if (typeof value === "number") return "a number";
  if (typeof value === "boolean") return "a boolean";
  if (value instanceof Date) return "a date";
  if (Array.isArray(value)) return "a list";
  if (isPlainObject(value)) return "a table";
  return `a ${typeof value}`;
}

/**
 * Whether a schema error's JSON pointer (`/endpoints/0/verify_token`) points at a secret: a key of
 * SECRET_KEYS or its `_file` form, anything inside one (an item of `api_keys`), or a flow's
 * `headers`, whose values carry credentials under any name (`X-Functions-Key`, `Ocp-Apim-Subscription-Key` ...).
 */
function isSecretPointer(pointer: string): boolean {
  const parts = pointer
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  const secret = (key: string) => (SECRET_KEYS as readonly string[]).includes(key.endsWith("_file") ? key.slice(0, -"_file".length) : key);
  return parts.some(secret) || (parts[0] === "flows" && parts[2] === "headers");
}

// --- paths -----------------------------------------------------------------------------------

function makePathsAbsolute(settings: Settings, dir: string): Settings {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const flows = Object.fromEntries(
    Object.entries(settings.flows).map(([name, flow]) => [
      name,
      flow.module && !flow.module.startsWith("builtin:") ? { ...flow, module: abs(flow.module) } : flow,
    ]),
  );
  const endpoints = settings.endpoints.map((e) =>
    e.transformers.module ? { ...e, transformers: { ...e.transformers, module: abs(e.transformers.module) } } : e,
  );
  return { ...settings, storage: { ...settings.storage, url: absoluteStorageUrl(settings.storage.url, dir) }, flows, endpoints };
}

/** `file:data/x.db` is relative to the settings folder; other libSQL URLs are left alone. */
export function absoluteStorageUrl(url: string, dir: string): string {
  if (!url.startsWith("file:")) return url;
  let path = url.slice("file:".length);
  if (path.startsWith("//")) path = path.replace(/^\/\/[^/]*/, ""); // file:///abs or file://host/abs
  if (path === ":memory:") return url;
  return `file:${isAbsolute(path) ? path : resolve(dir, path)}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
