/**
 * The JavaScript engine's view of the machine's memory, set before it starts (src/cli/heap-restart.ts,
 * imported first by src/main.ts, calls restartWithHeapSettings).
 *
 * JavaScriptCore sizes its garbage collection by the RAM it sees. On a 24 GB machine a server under
 * load let its heap grow to a peak of 160–170 MB whatever it held live; told the machine has 1, 2,
 * 4 or 8 GiB (`BUN_JSC_forceRAMSize`), the same load peaked at 131–136 MB with the same throughput
 * (docs/benchmarks.md, "The engine's view of memory"). On a machine with more than 4 GiB, `serve`
 * therefore replaces its own process image once, at the start, with the same program, arguments
 * and environment plus that variable set to 4 GiB (execve: the same pid, nothing else is running
 * yet). A machine with 4 GiB or less is left as it is (the engine already sees a small machine),
 * and so is an operator's own `BUN_JSC_forceRAMSize`. When the replacement is impossible, the
 * server simply starts as it is.
 */
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { parseArgs } from "./args.ts";

/** The RAM JavaScriptCore is told about on a larger machine: 4 GiB. */
export const ASSUMED_RAM_BYTES = 4 * 1024 ** 3;
export const RAM_VARIABLE = "BUN_JSC_forceRAMSize";
/** Set by the restart itself: never a second one, even if a runtime hid the variable above. */
export const RESTARTED_VARIABLE = "MESSENGER_ENDPOINT_HEAP_RESTARTED";

/** The environment `serve` should run with, or null when the current one will do. */
export function heapEnvironment(argv: readonly string[], env: NodeJS.ProcessEnv, ramBytes: number): Record<string, string> | null {
  if (env[RAM_VARIABLE] !== undefined || env[RESTARTED_VARIABLE] !== undefined || ramBytes <= ASSUMED_RAM_BYTES) return null;
  try {
    if (parseArgs(argv).command !== "serve") return null;
  } catch {
    return null; // the command line's own error is reported by the CLI, unchanged
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value;
  out[RAM_VARIABLE] = String(ASSUMED_RAM_BYTES);
  out[RESTARTED_VARIABLE] = "1";
  return out;
}

/** Replaces the process with itself under `heapEnvironment`; returns only when it did not. */
export function restartWithHeapSettings(): void {
  if (process.platform !== "linux") return;
  const env = heapEnvironment(process.argv.slice(2), process.env, totalmem());
  if (!env) return;
  try {
    // The command line exactly as given (process.argv of a compiled binary is not that).
    const args = readFileSync("/proc/self/cmdline", "utf8").split("\0");
    if (args.at(-1) === "") args.pop();
    process.execve?.("/proc/self/exe", args, env); // throws when it fails
  } catch {
    // No /proc, or the image could not be replaced (under an emulator, say): start as we are.
  }
}
