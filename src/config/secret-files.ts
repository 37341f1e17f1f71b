/**
 * `<secret>_file`: any key of SECRET_KEYS (config/schema.ts) may be given as the path of a file
 * that holds it (a Docker or Kubernetes secret, say), relative to the settings folder. The file's
 * text, without its final line break, becomes the value; for `api_keys_file`, one key per line
 * (blank lines and `#` comments skipped).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { SECRET_KEYS } from "./schema.ts";
import { joinPath, type SettingsProblem } from "./problems.ts";
import { isPlainObject, type KeyPath } from "./tree.ts";

/**
 * Replaces each `<secret>_file` key of the tree (in place) by the secret it names. A problem is
 * reported at the `_file` key; `reported` gets the secret's own key, so that it is not reported
 * missing as well.
 */
export function resolveSecretFiles(value: unknown, path: KeyPath, dir: string, problems: SettingsProblem[], reported: Set<string>): void {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) resolveSecretFiles(v, [...path, i], dir, problems, reported);
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
