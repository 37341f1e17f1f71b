/**
 * The `bun build --compile` command line shared by scripts/build.ts (one binary for this machine)
 * and scripts/release.ts (one binary per target). The flags are explained in docs/building.md.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface CompileOptions {
  /** Folder of the libSQL native driver to embed, relative to the repository; its last part must be the driver's name (linux-x64-gnu, linux-arm64-gnu), see src/native/libsql-addon.ts. */
  driver: string;
  /** Output file, relative to the repository. */
  outfile: string;
  /** Bun's compile target, e.g. bun-linux-arm64; none builds for this machine. */
  target?: string;
  /** A Bun executable for the target (cross-compilation without Bun's own download). */
  executable?: string;
}

export function compileArgs(o: CompileOptions): string[] {
  // src/native/libsql-addon.ts checks a driver unpacked before against this digest instead of
  // reading the embedded copy, which would stay resident for the process's lifetime.
  const driverSha256 = createHash("sha256")
    .update(readFileSync(join(import.meta.dir, "..", o.driver, "index.node")))
    .digest("hex");
  return [
    "build",
    "--compile",
    "--minify",
    "--sourcemap",
    "--bytecode",
    "--format=esm",
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    "--define",
    `process.env.MESSENGER_ENDPOINT_LIBSQL_SHA256="${driverSha256}"`,
    "--asset",
    "./migrations",
    "--asset",
    `./${o.driver}`,
    ...(o.target ? [`--target=${o.target}`] : []),
    ...(o.executable ? [`--compile-executable-path=${o.executable}`] : []),
    "src/main.ts",
    // The transformer worker is an entry point of its own (src/transformers/host.ts starts it).
    "src/transformers/worker.ts",
    "--outfile",
    o.outfile,
  ];
}
