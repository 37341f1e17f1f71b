/**
 * A settings file that holds secrets as literal values must not be readable by other users of
 * the machine. Secrets given through `<key>_file` or `${ENV}` are not in the file's text, so such
 * a file may stay readable.
 */
import { readFileSync, statSync } from "node:fs";

/** The warning for a settings file that others can read and that holds a secret literally, or null. */
export function settingsFileWarning(file: string | null, secrets: readonly string[]): string | null {
  if (!file || secrets.length === 0) return null;
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode & 0o777;
    if ((mode & 0o044) === 0) return null; // neither group nor others may read it
    text = readFileSync(file, "utf8");
  } catch {
    return null; // it was just read; if it is gone now, there is nothing to warn about
  }
  if (!secrets.some((secret) => text.includes(secret))) return null;
  const readers = mode & 0o004 ? "every user of this machine" : "its group";
  return (
    `the settings file ${file} holds secrets and ${readers} can read it (mode ${mode.toString(8).padStart(4, "0")}): ` +
    `chmod 600 ${file}, or give the secrets through *_file keys or \${ENV} variables`
  );
}
