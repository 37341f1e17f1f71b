/**
 * Child processes for what one process cannot show about itself (locks are per process). The
 * script is written to a temp folder and imports the repo's sources by absolute path; the parent
 * waits for a line on the child's stdout instead of sleeping.
 */
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import type { TempDir } from "./tmp.ts";

export const REPO = resolve(import.meta.dir, "..", "..");

/** Absolute path of a source file, for `import` lines in child scripts. */
export function srcPath(relative: string): string {
  return JSON.stringify(join(REPO, "src", relative));
}

export interface Child {
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything read from stdout so far. */
  output(): string;
  /** Kills the child and waits for it to exit. */
  stop(): Promise<void>;
}

export async function spawnScript(dir: TempDir, name: string, code: string, readyLine: string, args: string[] = []): Promise<Child> {
  const file = dir.write(name, code);
  const proc = Bun.spawn([process.execPath, file, ...args], { cwd: dir.path, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let seen = "";
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  while (!seen.split("\n").includes(readyLine)) {
    const { value, done } = await reader.read();
    if (done) {
      const stderr = await new Response(proc.stderr).text();
      await proc.exited;
      throw new Error(`child ${name} exited (${proc.exitCode}) before printing "${readyLine}":\n${seen}\n${stderr}`);
    }
    seen += decoder.decode(value, { stream: true });
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        seen += decoder.decode(value, { stream: true });
      }
    } catch {
      // the child was killed
    }
  })();
  return {
    proc,
    output: () => seen,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill();
      await proc.exited;
    },
  };
}

/** A child process holding the instance lock of `databaseFile`, as a running server does. */
export function holdInstanceLock(dir: TempDir, databaseFile: string): Promise<Child> {
  const code = `import { acquireInstanceLock } from ${srcPath("db/lock.ts")};
await acquireInstanceLock(process.argv[2], "test lock holder");
console.log("locked");
setInterval(() => {}, 1 << 30);
`;
  return spawnScript(dir, "hold-lock.ts", code, "locked", [databaseFile]);
}
