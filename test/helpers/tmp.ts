/** Per-file temporary folders under os.tmpdir(), removed in afterAll. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface TempDir {
  readonly path: string;
  /** Absolute path of `name` inside the folder. */
  join(...parts: string[]): string;
  /** Writes a file (creating folders) and returns its absolute path. */
  write(name: string, content: string | Uint8Array): string;
  /** A fresh sub-folder. */
  sub(name: string): TempDir;
  remove(): void;
}

export function tempDir(label = "test"): TempDir {
  return wrap(mkdtempSync(join(tmpdir(), `messenger-endpoint-${label.replace(/[^A-Za-z0-9_-]/g, "_")}-`)));
}

function wrap(path: string): TempDir {
  return {
    path,
    join: (...parts) => join(path, ...parts),
    write(name, content) {
      const file = join(path, name);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, content);
      return file;
    },
    sub(name) {
      const p = join(path, name);
      mkdirSync(p, { recursive: true });
      return wrap(p);
    },
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}
