/**
 * The release artifacts of `npm run release` (scripts/release.ts), in the folder
 * $MESSENGER_ENDPOINT_RELEASE (CI: dist/release, right after building it; .ci/run): the names,
 * SHA256SUMS, the CPU of each binary and of the libSQL driver embedded in it, the glibc each needs
 * against what docs/building.md promises, and the smoke test (binary.test.ts) run on each binary:
 * natively for linux-x64 and linux-x64-baseline, under qemu-aarch64 for linux-arm64.
 *
 * Without $MESSENGER_ENDPOINT_RELEASE the file is skipped (building three binaries is too slow for
 * `npm test`). Without qemu the arm64 run is skipped, unless REQUIRE_QEMU=1 (CI) makes it fail.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { elfMachine, embeddedSharedObjects, glibcMinimum, newestVersion } from "../../scripts/elf.ts";

const repo = join(import.meta.dir, "..", "..");
const version = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).version as string;
const given = process.env.MESSENGER_ENDPOINT_RELEASE;
const dir = given ? resolve(repo, given) : "";
const sysroot = process.env.QEMU_SYSROOT ?? "/usr/aarch64-linux-gnu";
const qemu = Bun.which("qemu-aarch64") ?? Bun.which("qemu-aarch64-static");
const qemuReady = Boolean(qemu) && ["lib/ld-linux-aarch64.so.1", "lib/libgcc_s.so.1"].every((f) => existsSync(join(sysroot, f)));
const temp = mkdtempSync(join(tmpdir(), "me-release-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

const binaries = [
  { name: "linux-x64", machine: "x86-64" },
  { name: "linux-x64-baseline", machine: "x86-64" },
  { name: "linux-arm64", machine: "aarch64" },
].map((b) => ({ ...b, file: `messenger-endpoint-${version}-${b.name}` }));

/** Runs the smoke test (test/smoke/binary.test.ts) against `bin`; its output on failure. */
async function smoke(bin: string): Promise<{ code: number; output: string }> {
  const proc = Bun.spawn([process.execPath, "test", "--timeout", "300000", "test/smoke/binary.test.ts"], {
    cwd: repo,
    env: { ...process.env, MESSENGER_ENDPOINT_BINARY: bin, MESSENGER_ENDPOINT_RELEASE: "" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, output: `${out}${err}` };
}

if (!given) {
  test.skip("release artifacts: skipped, set MESSENGER_ENDPOINT_RELEASE=dist/release after npm run release", () => {});
} else {
  describe(`release artifacts in ${dir}`, () => {
    test("three binaries named messenger-endpoint-<version>-<target> and SHA256SUMS, nothing else", () => {
      expect(readdirSync(dir).sort()).toEqual([...binaries.map((b) => b.file), "SHA256SUMS"].sort());
    });

    test("SHA256SUMS lists each binary with its SHA-256, as sha256sum -c reads it", () => {
      const lines = readFileSync(join(dir, "SHA256SUMS"), "utf8").trimEnd().split("\n");
      const listed = Object.fromEntries(lines.map((l) => [l.slice(66), l.slice(0, 64)]));
      expect(lines.every((l) => /^[0-9a-f]{64} {2}\S+$/.test(l))).toBe(true);
      for (const b of binaries) {
        expect(listed[b.file]).toBe(new Bun.CryptoHasher("sha256").update(readFileSync(join(dir, b.file))).digest("hex"));
      }
      expect(Object.keys(listed).length).toBe(binaries.length);
      if (Bun.which("sha256sum")) {
        const check = Bun.spawnSync(["sha256sum", "-c", "SHA256SUMS"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
        expect(check.stdout.toString()).toContain(`${binaries[2]?.file}: OK`);
        expect(check.exitCode).toBe(0);
      }
    });

    for (const b of binaries) {
      test(`${b.name}: the binary and its embedded libSQL driver are ${b.machine}, needing no newer glibc than docs/building.md says`, () => {
        const bytes = readFileSync(join(dir, b.file));
        expect(elfMachine(bytes)).toBe(b.machine);
        const embedded = embeddedSharedObjects(bytes);
        expect(embedded.map((e) => e.machine)).toEqual([b.machine]);
        // The driver (from its ELF header to the end of the binary: readelf needs no more) and
        // Bun's runtime each ask for some glibc; the newer of the two is what the binary needs.
        const driver = join(temp, `${b.name}-driver.node`);
        writeFileSync(driver, bytes.subarray(embedded[0]?.offset ?? 0));
        const needed = newestVersion([glibcMinimum(join(dir, b.file)), glibcMinimum(driver)]);
        const documented = readFileSync(join(repo, "docs/building.md"), "utf8").match(new RegExp(`-${b.name}\` \\|[^\\n]*\\| glibc (\\d+\\.\\d+)`))?.[1];
        expect(documented).toBeDefined();
        expect(newestVersion([needed ?? "", documented ?? ""])).toBe(documented);
      });
    }

    for (const b of binaries.filter((b) => b.machine === "x86-64")) {
      test(`${b.name}: the smoke test passes`, async () => {
        const r = await smoke(join(dir, b.file));
        expect(r.output).toMatch(/\n\s*[1-9]\d* pass\n\s*0 fail/);
        expect(r.code).toBe(0);
      }, 600_000);
    }

    if (qemuReady || process.env.REQUIRE_QEMU === "1") {
      test(`linux-arm64: the smoke test passes under ${qemu ?? "qemu-aarch64 (missing)"} -L ${sysroot}`, async () => {
        expect(qemuReady).toBe(true); // REQUIRE_QEMU=1: apt-get install qemu-user libc6-arm64-cross libgcc-s1-arm64-cross
        // The smoke test starts the binary by its path: a script that runs it under qemu. The binary
        // is a copy in a folder of its own (it unpacks its driver beside itself, not in the release).
        const arm64 = join(temp, "arm64", "messenger-endpoint");
        mkdirSync(dirname(arm64));
        copyFileSync(join(dir, binaries[2]?.file ?? ""), arm64);
        const wrapper = join(temp, "messenger-endpoint-arm64");
        writeFileSync(wrapper, `#!/bin/sh\nexec ${qemu} -L ${sysroot} ${arm64} "$@"\n`, { mode: 0o755 });
        const r = await smoke(wrapper);
        expect(r.output).toMatch(/\n\s*[1-9]\d* pass\n\s*0 fail/);
        expect(r.code).toBe(0);
      }, 900_000);
    } else {
      test.skip("linux-arm64: smoke test under qemu skipped, no qemu-aarch64 or no arm64 glibc in QEMU_SYSROOT (apt-get install qemu-user libc6-arm64-cross libgcc-s1-arm64-cross)", () => {});
    }
  });
}
