/**
 * TransformerHost failure modes: a module that never finishes loading, a worker that dies after
 * its run, a return value JSON cannot carry, and a pool whose replacement workers cannot load.
 * None of them may leave a run waiting forever.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import { systemClock } from "../../../src/core/clock.ts";
import { TransformerHost } from "../../../src/transformers/host.ts";
import { SessionStorage } from "../../../src/transformers/storage.ts";
import { collectingLogger } from "../../helpers/log.ts";
import { tempDir } from "../../helpers/tmp.ts";

const dir = tempDir("transformer-host");
let database: Database;
let writes: WriteQueue;
const hosts: TransformerHost[] = [];

beforeAll(async () => {
  database = await openDatabase(`file:${dir.join("t.db")}`);
  await applyMigrations(database);
  writes = new WriteQueue(database.client, { durable: database.durable });
});
afterAll(async () => {
  for (const h of hosts) await h.stop();
  await writes.drain();
  database.close();
  dir.remove();
});

function host(file: string, code: string, options: { poolSize?: number; timeoutMs?: number } = {}) {
  const module = dir.write(file, code);
  const logs = collectingLogger();
  const storage = new SessionStorage({ endpointId: "e", database, writes, clock: systemClock });
  const h = new TransformerHost({
    endpointId: "e",
    module,
    storage,
    log: logs.log,
    watch: false,
    poolSize: options.poolSize ?? 1,
    timeoutMs: options.timeoutMs ?? 500,
  });
  hosts.push(h);
  return { h, module, logs };
}

test("a module whose top-level code never ends fails to start within the time limit", async () => {
  const { h } = host("hang.ts", "while (true) {}\nexport function handleInput() { return {}; }");
  const started = performance.now();
  await expect(h.start()).rejects.toThrow("did not load within 500 ms");
  expect(performance.now() - started).toBeLessThan(3_000);
});

test("a worker that dies after its run is replaced; the next run does not wait for the time limit", async () => {
  const { h } = host("dies.ts", "export function handleInput() { setTimeout(() => { throw new Error('later'); }, 0); return { text: 'ok' }; }", {
    timeoutMs: 3_000,
  });
  await h.start();
  expect(await h.run("handleInput", {})).toEqual({ text: "ok" });
  await Bun.sleep(50); // the worker's uncaught error happens now
  const started = performance.now();
  expect(await h.run("handleInput", {})).toEqual({ text: "ok" });
  expect(performance.now() - started).toBeLessThan(2_000);
});

test("a return value JSON cannot carry is a failed run, not a crash", async () => {
  // Run in a plain `bun` process: under `bun test` a worker answering after a failed
  // JSON.stringify of a BigInt never delivers its message (a runner quirk; the server is not affected).
  const script = dir.write(
    "json-return.ts",
    `import { openDatabase } from ${JSON.stringify(`${import.meta.dir}/../../../src/db/client.ts`)};
import { applyMigrations } from ${JSON.stringify(`${import.meta.dir}/../../../src/db/migrate.ts`)};
import { WriteQueue } from ${JSON.stringify(`${import.meta.dir}/../../../src/db/write-queue.ts`)};
import { TransformerHost } from ${JSON.stringify(`${import.meta.dir}/../../../src/transformers/host.ts`)};
import { SessionStorage } from ${JSON.stringify(`${import.meta.dir}/../../../src/transformers/storage.ts`)};
import { silentLogger } from ${JSON.stringify(`${import.meta.dir}/../../../src/log/logger.ts`)};
const database = await openDatabase(${JSON.stringify(`file:${dir.join("json.db")}`)});
await applyMigrations(database);
const writes = new WriteQueue(database.client, { durable: database.durable });
const h = new TransformerHost({ endpointId: "e", module: ${JSON.stringify(dir.write("big-value.ts", "export function handleInput(a) { return a.big ? { data: { n: BigInt(1) } } : { text: 'x' }; }"))}, storage: new SessionStorage({ endpointId: "e", database, writes, clock: { now: () => Date.now() } }), log: silentLogger, watch: false, poolSize: 1, timeoutMs: 3000 });
await h.start();
const out = [];
for (const args of [{}, { big: true }, {}]) out.push(await h.run("handleInput", args).then((v) => JSON.stringify(v), (e) => "ERR " + e.message));
await h.stop();
console.log(JSON.stringify(out));
process.exit(0);
`,
  );
  const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = [await new Response(proc.stdout).text(), await proc.exited];
  expect(code).toBe(0);
  const [first, big, after] = JSON.parse(out.trim().split("\n").at(-1)!) as string[];
  expect(first).toBe('{"text":"x"}');
  expect(big).toContain("not JSON");
  expect(after).toBe('{"text":"x"}'); // the worker still answers
});

test("when the replacement of a stopped worker cannot load the module, runs fail in time and the pool recovers once it loads", async () => {
  const good = "export function handleInput(a) { if (a.loop) { while (true) {} } return { text: 'fine' }; }";
  const { h, module } = host("broken-later.ts", good, { timeoutMs: 400 });
  await h.start();
  writeFileSync(module, "export function handleInput( {"); // saved broken (no watch here: the pool keeps the old code)
  await expect(h.run("handleInput", { loop: true })).rejects.toThrow("did not finish within 400 ms");
  // The only worker was stopped and its replacement cannot load: a run fails after the limit instead of waiting forever.
  await expect(h.run("handleInput", {})).rejects.toThrow("could not start within 400 ms");
  writeFileSync(module, good);
  const deadline = Date.now() + 10_000;
  let answer: unknown = null;
  while (Date.now() < deadline && answer === null) answer = await h.run("handleInput", {}).catch(() => null);
  expect(answer).toEqual({ text: "fine" });
});
