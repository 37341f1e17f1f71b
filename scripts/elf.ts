/**
 * What the release checks in its binaries (scripts/release.ts, test/smoke/release.test.ts): the
 * CPU an ELF file is for, the native libraries embedded in a compiled binary, and the newest glibc
 * symbol version a file asks for (the oldest glibc it runs on).
 */

const MACHINES: Record<number, string> = { 62: "x86-64", 183: "aarch64" };
const MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]); // ELF, 64-bit, little-endian, version 1
const ET_DYN = 3;

/** The CPU of the ELF image starting at `offset` (e_machine, at byte 18), or null if there is none. */
export function elfMachine(bytes: Uint8Array, offset = 0): string | null {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < offset + 20 || !b.subarray(offset, offset + MAGIC.length).equals(MAGIC)) return null;
  const machine = b.readUInt16LE(offset + 18);
  return MACHINES[machine] ?? `e_machine 0x${machine.toString(16)}`;
}

/**
 * The shared libraries stored inside a file after its own ELF header: in a compiled binary these
 * are the embedded assets (the libSQL driver). Each as its offset and CPU.
 */
export function embeddedSharedObjects(bytes: Uint8Array): { offset: number; machine: string }[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found: { offset: number; machine: string }[] = [];
  for (let at = b.indexOf(MAGIC, 1); at !== -1; at = b.indexOf(MAGIC, at + 1)) {
    const machine = elfMachine(b, at);
    if (machine && b.readUInt16LE(at + 16) === ET_DYN) found.push({ offset: at, machine });
  }
  return found;
}

/** The newest GLIBC_x.y version the file's dynamic symbols need, from `readelf` (binutils reads every CPU's ELF). */
export function glibcMinimum(file: string): string {
  const r = Bun.spawnSync(["readelf", "--dyn-syms", "--wide", file], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`readelf failed on ${file} (install binutils): ${r.stderr.toString()}`);
  return newestVersion([...r.stdout.toString().matchAll(/@GLIBC_(\d+(?:\.\d+)+)/g)].map((m) => m[1] ?? "")) ?? "none";
}

/** The highest of some dotted version numbers ("2.9" < "2.17"), or undefined for none. */
export function newestVersion(versions: string[]): string | undefined {
  return [...versions].sort((a, b) => a.localeCompare(b, "en", { numeric: true })).pop();
}
