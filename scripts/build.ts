/**
 * Builds the single executable: `npm run build` → dist/messenger-endpoint.
 *
 * The migrations folder and the libSQL native driver are embedded as assets (see
 * src/native/libsql-addon.ts for why the driver is unpacked by the app itself). Files imported
 * `with { type: "text" }` (the simulator's chat page, src/simulator/page/page.ts) are embedded by
 * the bundler itself. Flags and the traps behind them are documented in docs/building.md.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { compileArgs } from "./compile.ts";

const root = join(import.meta.dir, "..");
const target = process.env.MESSENGER_ENDPOINT_TARGET; // e.g. bun-linux-x64-baseline for CPUs without AVX2
const driver = "node_modules/@libsql/linux-x64-gnu";
if (!existsSync(join(root, driver, "index.node"))) {
  console.error(`missing ${driver}/index.node: run npm install first`);
  process.exit(1);
}
mkdirSync(join(root, "dist"), { recursive: true });

const args = compileArgs({ driver, outfile: "dist/messenger-endpoint", target });
const started = performance.now();
const proc = Bun.spawn([process.execPath, ...args], { cwd: root, stdout: "inherit", stderr: "inherit" });
const code = await proc.exited;
if (code !== 0) {
  console.error(`bun build failed with exit code ${code}`);
  process.exit(code);
}
const size = Bun.file(join(root, "dist/messenger-endpoint")).size;
console.log(`built dist/messenger-endpoint (${(size / 1024 / 1024).toFixed(0)} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
