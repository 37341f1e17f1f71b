/**
 * Makes @libsql/client work inside the single executable. Imported first by src/main.ts.
 *
 * The libsql driver loads its native addon with `require(\`@libsql/${target}\`)`, a computed name the
 * bundler cannot follow, so the compiled binary would die with "Cannot find module". The build
 * embeds the addon folder of the binary's CPU (`--asset ./node_modules/@libsql/linux-x64-gnu`, or
 * a folder named linux-arm64-gnu for arm64: scripts/release.ts); here we write the
 * addon to disk once under a content-hashed name, `dlopen` it, and register it under the module
 * name the driver asks for. Bun's own extraction of embedded addons goes to $TMPDIR and fails on
 * a `noexec` /tmp, which is common on hardened VMs; we pick a folder of our own that can execute
 * (never a shared temporary folder), and check the file's hash before loading it.
 *
 * From source and in `bun test` this does nothing: node_modules resolves normally.
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

// The driver's name for this CPU, as the libsql package computes it (linux-x64-gnu, linux-arm64-gnu).
const DRIVER = `linux-${process.arch}-gnu`;
const MODULE = `@libsql/${DRIVER}`;
const EMBEDDED = `/$bunfs/root/${DRIVER}/index.node`;

if (Bun.isStandaloneExecutable) registerEmbeddedAddon();

function registerEmbeddedAddon(): void {
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
    fail(`there are builds for linux-x64 and linux-arm64 only; this machine is ${process.platform}-${process.arch}`);
  }
  // The build writes the driver's SHA-256 into the binary (scripts/compile.ts), so that a driver
  // unpacked before is checked without reading the embedded copy: read, its 9.7 MB would stay in
  // the process's resident memory for as long as it runs (they are pages of the executable).
  const built = process.env.MESSENGER_ENDPOINT_LIBSQL_SHA256;
  const builtDigest = built && /^[0-9a-f]{64}$/.test(built) ? built : null;
  let embedded: Buffer | null = null;
  /** The embedded driver, read (and checked against the build's digest) once, only when needed. */
  const bytes = (): Buffer => {
    if (embedded) return embedded;
    try {
      embedded = readFileSync(EMBEDDED);
    } catch (error) {
      fail(`the embedded libSQL driver is missing from this build (${(error as Error).message}); rebuild with scripts/build.ts or scripts/release.ts`);
    }
    if (builtDigest && sha256(embedded) !== builtDigest)
      fail("the embedded libSQL driver does not match the digest written at build time; rebuild with scripts/build.ts");
    return embedded;
  };
  const digest = builtDigest ?? sha256(bytes());
  const name = `libsql-${digest.slice(0, 16)}.node`;
  const problems: string[] = [];
  for (const dir of candidateFolders()) {
    const file = join(dir, name);
    try {
      // A file already there is used only if it is exactly the embedded driver: a folder
      // someone else can write to must not be able to slip us a different library.
      if (!existsSync(file) || fileSha256(file) !== digest) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const partial = `${file}.${process.pid}.partial`;
        writeFileSync(partial, bytes(), { mode: 0o700 });
        renameSync(partial, file);
      }
      const module = { exports: {} as Record<string, unknown> };
      process.dlopen(module, file);
      const exports = module.exports;
      Bun.plugin({
        name: "embedded-libsql",
        setup(build) {
          build.module(MODULE, () => ({ exports, loader: "object" }));
        },
      });
      return;
    } catch (error) {
      problems.push(`${dir}: ${(error as Error).message}`);
    }
  }
  fail(
    `cannot load the libSQL driver from any folder (set MESSENGER_ENDPOINT_NATIVE_DIR to a writable folder that allows executables):\n  ${problems.join("\n  ")}`,
  );
}

/** Folders to unpack the driver into, best first. Each must be writable and allow mapping code. */
function candidateFolders(): string[] {
  const folders = [
    process.env.MESSENGER_ENDPOINT_NATIVE_DIR,
    join(dirname(process.execPath), ".native"),
    join(process.cwd(), "data", ".native"),
    join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "messenger-endpoint"),
  ];
  return [...new Set(folders.filter((f): f is string => Boolean(f)))];
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A file's SHA-256, read in small pieces (the whole file in one buffer would grow the heap by its size). */
function fileSha256(file: string): string {
  const hash = createHash("sha256");
  const chunk = Buffer.allocUnsafe(1 << 16);
  const fd = openSync(file, "r");
  try {
    for (let n = readSync(fd, chunk); n > 0; n = readSync(fd, chunk)) hash.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

function fail(message: string): never {
  process.stderr.write(`messenger-endpoint: ${message}\n`);
  process.exit(2);
}
