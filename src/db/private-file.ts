/** Files that will hold user data are created private (0600) before anything writes to them. */
import { closeSync, existsSync, openSync } from "node:fs";

/**
 * Creates an empty file with mode 0600 if there is none. An existing file is not opened: closing
 * any descriptor of a file drops every POSIX lock this process holds on it, SQLite's included.
 */
export function createPrivate(file: string): void {
  if (existsSync(file)) return;
  try {
    closeSync(openSync(file, "wx", 0o600));
  } catch (error) {
    if ((error as { code?: string }).code !== "EEXIST") throw error; // created meanwhile: fine
  }
}
