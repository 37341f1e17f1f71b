/**
 * The JavaScript engine's settings, set before it starts (src/cli/engine-restart.ts, imported
 * first by src/main.ts, calls restartWithEngineSettings). JavaScriptCore reads them from
 * `BUN_JSC_*` variables once, when the process starts, so `serve` replaces its own process image
 * once, at the start, with the same program, arguments and environment plus the variables below
 * (execve of the executable's own path, so the process keeps its name; the same pid, nothing else
 * is running yet). A variable the operator set is kept as it is; when nothing is left to set, or
 * the replacement is impossible, the server starts as it is.
 *
 * - `BUN_JSC_forceRAMSize` = 4 GiB, on a machine with more. JavaScriptCore sizes its garbage
 *   collection by the RAM it sees: on a 24 GB machine a server under load let its heap grow to a
 *   peak of 160–170 MB whatever it held live; told 1, 2, 4 or 8 GiB, the same load peaked at
 *   131–136 MB with the same throughput (docs/benchmarks.md, "The engine's view of memory").
 * - `BUN_JSC_useFTLJIT` = 0: no fourth compiler tier. Its compilations took 15 % of the process's
 *   CPU 6–11 s after the start under load, and some more for the rest of the first minute, on the
 *   cores the turns need, for code whose time is mostly spent in SQLite, the HTTP stack and the
 *   kernel: without it the p99 at 1,000 webhooks a second fell by a quarter to a third and the peak
 *   RSS by 10–20 MB, with the same CPU per turn once warm (docs/benchmarks.md, "Three compiler tiers
 *   instead of four").
 */
import { readFileSync, readlinkSync } from "node:fs";
import { totalmem } from "node:os";
import { parseArgs } from "./args.ts";

/** The RAM JavaScriptCore is told about on a larger machine: 4 GiB. */
export const ASSUMED_RAM_BYTES = 4 * 1024 ** 3;
export const RAM_VARIABLE = "BUN_JSC_forceRAMSize";
/** JavaScriptCore's fourth tier (FTL), off unless the operator sets it. */
export const FTL_VARIABLE = "BUN_JSC_useFTLJIT";
/**
 * Set by the restart itself: never a second one, even if a runtime hid the variables above. (Its
 * name is from when the restart set the heap's view only; operators may have set it to avoid one.)
 */
export const RESTARTED_VARIABLE = "MESSENGER_ENDPOINT_HEAP_RESTARTED";

/** The environment `serve` should run with, or null when the current one will do. */
export function engineEnvironment(argv: readonly string[], env: NodeJS.ProcessEnv, ramBytes: number): Record<string, string> | null {
  if (env[RESTARTED_VARIABLE] !== undefined) return null;
  const wanted: Record<string, string> = {};
  if (env[RAM_VARIABLE] === undefined && ramBytes > ASSUMED_RAM_BYTES) wanted[RAM_VARIABLE] = String(ASSUMED_RAM_BYTES);
  if (env[FTL_VARIABLE] === undefined) wanted[FTL_VARIABLE] = "0";
  if (Object.keys(wanted).length === 0) return null;
  try {
    const args = parseArgs(argv);
    if (args.command !== "serve" || args.help) return null;
  } catch {
    return null; // the command line's own error is reported by the CLI, unchanged
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value;
  return Object.assign(out, wanted, { [RESTARTED_VARIABLE]: "1" });
}

/** Replaces the process with itself under `engineEnvironment`; returns only when it did not. */
export function restartWithEngineSettings(): void {
  if (process.platform !== "linux") return;
  const env = engineEnvironment(process.argv.slice(2), process.env, totalmem());
  if (!env) return;
  try {
    // The command line exactly as given (process.argv of a compiled binary is not that).
    const args = readFileSync("/proc/self/cmdline", "utf8").split("\0");
    if (args.at(-1) === "") args.pop();
    // The kernel names the process after the file it runs: "/proc/self/exe" would make it "exe" in
    // ps, top and the journal. That link names the executable, unless it was replaced since.
    const self = readlinkSync("/proc/self/exe");
    process.execve?.(self.endsWith(" (deleted)") ? "/proc/self/exe" : self, args, env); // throws when it fails
  } catch {
    // No /proc, or the image could not be replaced (under an emulator, say): start as we are.
  }
}
