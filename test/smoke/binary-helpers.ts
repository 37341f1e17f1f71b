/**
 * Helpers for tests that run the compiled executable as a user would: a copy of the binary alone
 * in an empty folder, started as a child process, watched through its JSON log lines.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

const repo = join(import.meta.dir, "..", "..");
let built: string | null = null;

/**
 * The binary under test: $MESSENGER_ENDPOINT_BINARY (CI points it at the artifact it built), else
 * a fresh build of the working tree (once per test run).
 */
export async function binaryUnderTest(): Promise<string> {
  const given = process.env.MESSENGER_ENDPOINT_BINARY;
  if (given) {
    if (!existsSync(given)) throw new Error(`MESSENGER_ENDPOINT_BINARY=${given} does not exist`);
    return given;
  }
  if (built) return built;
  const proc = Bun.spawn([process.execPath, "scripts/build.ts"], { cwd: repo, stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`build failed (${code}):\n${out}\n${err}`);
  built = join(repo, "dist", "messenger-endpoint");
  return built;
}

/** An empty temporary folder holding only a copy of the binary. */
export async function installBinary(): Promise<{ dir: string; bin: string; cleanup(): void }> {
  const dir = mkdtempSync(join(tmpdir(), "me-smoke-"));
  const bin = join(dir, "messenger-endpoint");
  copyFileSync(await binaryUnderTest(), bin);
  return { dir, bin, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Running {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Every JSON log line seen so far. */
  lines: Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the first log line matching, or rejects when the process exits first. */
  waitFor(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number>;
}

export function start(bin: string, args: string[], options: { cwd: string; env?: Record<string, string> }): Running {
  const proc = Bun.spawn([bin, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: options.cwd, ...options.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let errText = "";
  let ended = false;
  const endWaiters: (() => void)[] = [];

  (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of proc.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf("\n")) !== -1) {
        const text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(text);
        } catch {
          line = { unparsed: text };
        }
        lines.push(line);
        for (const w of [...waiters]) {
          if (w.match(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    }
  })();
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) errText += decoder.decode(chunk, { stream: true });
  })();
  const exited = proc.exited.then((code) => {
    ended = true;
    for (const f of endWaiters) f();
    return code;
  });

  return {
    proc,
    lines,
    stderr: () => errText,
    exited,
    waitFor(match, timeoutMs = 15_000) {
      const found = lines.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line; stderr:\n${errText}`)), timeoutMs);
        const fail = () => {
          clearTimeout(timer);
          reject(new Error(`process exited before the expected log line; stderr:\n${errText}\nstdout:\n${lines.map((l) => JSON.stringify(l)).join("\n")}`));
        };
        if (ended) return fail();
        endWaiters.push(fail);
        waiters.push({
          match,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
  };
}

/** Runs the binary to completion. */
export async function run(bin: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const proc = Bun.spawn([bin, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, stdout, stderr };
}
