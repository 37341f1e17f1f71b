/**
 * `npm run release`: the binaries we hand out, in dist/release/:
 *
 *   messenger-endpoint-<version>-linux-x64            x86-64 CPUs with AVX2
 *   messenger-endpoint-<version>-linux-x64-baseline   any x86-64 CPU
 *   messenger-endpoint-<version>-linux-arm64          64-bit ARM (aarch64)
 *   SHA256SUMS                                        for `sha256sum -c SHA256SUMS`
 *
 * Each is scripts/compile.ts's command with `--target` and the libSQL driver of its CPU. Bun's
 * runtime for each target and the arm64 driver come from the npm registry (`npm pack`, at the
 * versions of the installed bun and @libsql/linux-x64-gnu) into dist/.release-cache, and the
 * compiler is pointed at the runtime with --compile-executable-path instead of letting it
 * download one. Before the checksums are written, every binary and its embedded driver are
 * checked to be for the target's CPU (scripts/elf.ts). docs/building.md, "Release", says what
 * each binary needs (CPU, glibc); test/smoke/release.test.ts checks the artifacts.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compileArgs } from "./compile.ts";
import { elfMachine, embeddedSharedObjects, glibcMinimum, newestVersion } from "./elf.ts";

const root = join(import.meta.dir, "..");
const out = "dist/release";
const cache = "dist/.release-cache";

interface Target {
  name: string; // the file name's suffix
  bunTarget: string;
  runtimePackage: string; // the npm package carrying Bun's executable for the target
  driver: string; // @libsql/<driver>
  machine: string; // ELF e_machine of the binary and of the driver
}

export const TARGETS: Target[] = [
  { name: "linux-x64", bunTarget: "bun-linux-x64", runtimePackage: "@oven/bun-linux-x64", driver: "linux-x64-gnu", machine: "x86-64" },
  {
    name: "linux-x64-baseline",
    bunTarget: "bun-linux-x64-baseline",
    runtimePackage: "@oven/bun-linux-x64-baseline",
    driver: "linux-x64-gnu",
    machine: "x86-64",
  },
  { name: "linux-arm64", bunTarget: "bun-linux-arm64", runtimePackage: "@oven/bun-linux-aarch64", driver: "linux-arm64-gnu", machine: "aarch64" },
];

function die(message: string): never {
  console.error(`release: ${message}`);
  process.exit(1);
}

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(root, file), "utf8"));
}

/** The unpacked npm package `name@version` (its `package/` folder), fetched once into the cache. */
function npmPackage(name: string, version: string): string {
  const dir = join(cache, `${name.replace("/", "+")}@${version}`);
  if (existsSync(join(root, dir, "package", "package.json"))) return join(dir, "package");
  rmSync(join(root, dir), { recursive: true, force: true });
  mkdirSync(join(root, dir), { recursive: true });
  console.log(`fetching ${name}@${version} from the npm registry`);
  const pack = Bun.spawnSync(["npm", "pack", "--silent", `${name}@${version}`, "--pack-destination", dir], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const tgz = readdirSync(join(root, dir)).find((f) => f.endsWith(".tgz"));
  if (pack.exitCode !== 0 || !tgz) die(`npm pack ${name}@${version} failed (check the network and npm's registry setting):\n${pack.stderr.toString()}`);
  const untar = Bun.spawnSync(["tar", "-xzf", tgz], { cwd: join(root, dir), stderr: "pipe" });
  if (untar.exitCode !== 0) die(`cannot unpack ${dir}/${tgz}: ${untar.stderr.toString()}`);
  rmSync(join(root, dir, tgz));
  return join(dir, "package");
}

/**
 * The folder to embed for a driver. Its last part must be the driver's name: the binary looks for
 * /$bunfs/root/<driver>/index.node (src/native/libsql-addon.ts).
 */
function driverFolder(driver: string, version: string): string {
  const installed = `node_modules/@libsql/${driver}`;
  if (existsSync(join(root, installed, "index.node")) && readJson(`${installed}/package.json`).version === version) return installed;
  const unpacked = npmPackage(`@libsql/${driver}`, version);
  const folder = join(cache, "drivers", version, driver);
  mkdirSync(join(root, folder), { recursive: true });
  copyFileSync(join(root, unpacked, "index.node"), join(root, folder, "index.node"));
  return folder;
}

async function compile(t: Target, version: string, driverVersion: string): Promise<string> {
  const bunVersion = Bun.version;
  const executable = join(root, npmPackage(t.runtimePackage, bunVersion), "bin", "bun");
  if (t.name === "linux-x64-baseline") {
    const x64 = join(root, npmPackage("@oven/bun-linux-x64", bunVersion), "bin", "bun");
    if (readFileSync(x64).equals(readFileSync(executable))) {
      console.warn(
        `note: ${t.runtimePackage}@${bunVersion} carries the same executable as @oven/bun-linux-x64@${bunVersion}: the two x64 binaries will be identical`,
      );
    }
  }
  const driver = driverFolder(t.driver, driverVersion);
  const driverMachine = elfMachine(readFileSync(join(root, driver, "index.node")));
  if (driverMachine !== t.machine) die(`${driver}/index.node is for ${driverMachine}, not ${t.machine}: delete ${cache} and run again`);
  // Built in a folder of its own: bun also writes source maps beside the binary (the binary
  // carries its own, --sourcemap), and they would overwrite each other in dist/release.
  const staged = join(cache, "build", t.name, "messenger-endpoint");
  rmSync(join(root, cache, "build", t.name), { recursive: true, force: true });
  const outfile = join(out, `messenger-endpoint-${version}-${t.name}`);
  const started = performance.now();
  const proc = Bun.spawn([process.execPath, ...compileArgs({ driver, outfile: staged, target: t.bunTarget, executable })], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) die(`bun build for ${t.bunTarget} failed with exit code ${code}:\n${stdout}${stderr}`);
  checkBinary(join(root, staged), t.machine);
  renameSync(join(root, staged), join(root, outfile));
  console.log(`built ${outfile} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return outfile;
}

/** The binary and every native library embedded in it are for `machine`; there is at least one (the driver). */
export function checkBinary(file: string, machine: string): void {
  const bytes = readFileSync(file);
  const own = elfMachine(bytes);
  if (own !== machine) die(`${file} is for ${own}, not ${machine}`);
  const embedded = embeddedSharedObjects(bytes);
  if (embedded.length === 0) die(`${file} has no embedded libSQL driver`);
  const wrong = embedded.find((e) => e.machine !== machine);
  if (wrong) die(`${file} embeds a native library for ${wrong.machine} at byte ${wrong.offset}, not ${machine}`);
}

if (import.meta.main) {
  const pinned = (readJson("package.json").devDependencies as Record<string, string>).bun;
  if (Bun.version !== pinned) die(`this is bun ${Bun.version} but package.json pins ${pinned}: run npm run release (node_modules/.bin/bun)`);
  const version = readJson("package.json").version as string;
  const driverVersion = readJson("node_modules/@libsql/linux-x64-gnu/package.json").version as string;
  rmSync(join(root, out), { recursive: true, force: true });
  mkdirSync(join(root, out), { recursive: true });
  const started = performance.now();
  const lines: string[] = [];
  const sums: string[] = [];
  for (const t of TARGETS) {
    const file = await compile(t, version, driverVersion);
    const bytes = readFileSync(join(root, file));
    const name = file.slice(out.length + 1);
    sums.push(`${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}  ${name}`);
    const driver = join(root, driverFolder(t.driver, driverVersion), "index.node");
    const glibc = newestVersion([glibcMinimum(join(root, file)), glibcMinimum(driver)]);
    lines.push(`  ${name}  ${(bytes.length / 1024 / 1024).toFixed(0)} MB  ${t.machine}, glibc >= ${glibc}`);
  }
  writeFileSync(join(root, out, "SHA256SUMS"), `${sums.join("\n")}\n`);
  console.log(
    `\nrelease ${version} in ${join(root, out)} (${((performance.now() - started) / 1000).toFixed(0)} s):\n${lines.join("\n")}\n  SHA256SUMS\ncheck with: cd ${out} && sha256sum -c SHA256SUMS`,
  );
}
