/** `${NAME}` in the settings: every string value may take its text from the environment. */
import { joinPath, type SettingsProblem } from "./problems.ts";
import { isPlainObject, type KeyPath } from "./tree.ts";

/** The environment the settings are read with (`process.env`, or a test's own). */
export type Env = Record<string, string | undefined>;

const ENV_PATTERN = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replace `${NAME}` (and `${NAME:-default}`) in every string value; `$${` is a literal `${`. A
 * variable that is unset or empty, without a default, is a problem of its key.
 */
export function interpolate(value: unknown, path: KeyPath, env: Env, problems: SettingsProblem[]): unknown {
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
