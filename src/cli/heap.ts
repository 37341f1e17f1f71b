/**
 * The JavaScript engine's view of the machine's memory, set before it starts (src/cli/heap-restart.ts,
 * imported first by src/main.ts, calls restartWithHeapSettings).
 *
 * JavaScriptCore sizes its garbage collection by the RAM it sees. On a 24 GB machine a server under
 * load let its heap grow to a peak of 160–170 MB, whatever it held live; told the machine has 1 GiB
 * (`BUN_JSC_forceRAMSize`), the same load peaked at 131–136 MB with the same throughput
 * (docs/benchmarks.md, "Memory under load"). The engine reads that setting only from the
 * environment when the process starts, so `serve` replaces its own process image once, at the
 * start, with the same program, arguments and environment plus that variable (execve: the same
 * pid, nothing else is running yet). An operator's own `BUN_JSC_forceRAMSize` is kept; when the
 * replacement is impossible (no libc to call), the server simply starts as it is.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "./args.ts";

/** The RAM JavaScriptCore is told about: 1 GiB. */
export const ASSUMED_RAM_BYTES = 1 << 30;
export const RAM_VARIABLE = "BUN_JSC_forceRAMSize";

/** The environment `serve` should run with, or null when the current one will do. */
export function heapEnvironment(argv: readonly string[], env: NodeJS.ProcessEnv): Record<string, string> | null {
  if (env[RAM_VARIABLE] !== undefined) return null;
  try {
    if (parseArgs(argv).command !== "serve") return null;
  } catch {
    return null; // the command line's own error is reported by the CLI, unchanged
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value;
  out[RAM_VARIABLE] = String(ASSUMED_RAM_BYTES);
  return out;
}

/** Replaces the process with itself under `heapEnvironment`; returns only when it did not. */
export function restartWithHeapSettings(): void {
  if (process.platform !== "linux") return;
  const env = heapEnvironment(process.argv.slice(2), process.env);
  if (!env) return;
  try {
    // The command line exactly as given (process.argv of a compiled binary is not that).
    const args = readFileSync("/proc/self/cmdline", "utf8").split("\0");
    if (args.at(-1) === "") args.pop();
    // Loaded only here: the restarted process never needs it.
    const { dlopen, FFIType, ptr } = require("bun:ffi") as typeof import("bun:ffi");
    const libc = dlopen("libc.so.6", { execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 } });
    const strings = ["/proc/self/exe", ...args, ...Object.entries(env).map(([key, value]) => `${key}=${value}`)].map((s) => Buffer.from(`${s}\0`, "utf8"));
    const pointers = (from: number, count: number) => {
      const list = new BigUint64Array(count + 1); // ends with NULL
      for (let i = 0; i < count; i++) list[i] = BigInt(ptr(strings[from + i]!));
      return list;
    };
    const argv = pointers(1, args.length);
    const envp = pointers(1 + args.length, strings.length - 1 - args.length);
    libc.symbols.execve(ptr(strings[0]!), ptr(argv), ptr(envp));
    libc.close(); // execve returned: it failed; start as we are
  } catch {
    // No libc to call (or no /proc): start as we are.
  }
}
