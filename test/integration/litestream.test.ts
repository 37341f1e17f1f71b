/**
 * Continuous backup with Litestream (docs/operations.md): `litestream replicate` (the binary the
 * @flydotio/litestream package ships) copies the WAL of a running server to a `file` replica,
 * checkpointing it itself; after a kill -9 of both, `litestream restore` gives back a database
 * holding every acknowledged webhook, on which the server starts and finishes the pending work.
 *
 * The server is `bun src/main.ts serve`, a child process, watched through its JSON log lines.
 * Litestream reports nothing we could await for "replicated up to here", so the test restores
 * the replica again until it holds what was acknowledged.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { start, type Running } from "../smoke/binary-helpers.ts";
import { REPO, settingsToml, tempDir } from "../helpers/index.ts";
import { signBody } from "../../src/webhook/signature.ts";
import { checkDatabaseFile } from "../../src/db/backup.ts";
import { APP_SECRET, PAGE_ID } from "../helpers/config.ts";

const LITESTREAM = join(REPO, "node_modules", "@flydotio", `litestream-${process.platform}-${process.arch}`, "litestream");
const root = tempDir("litestream");
const children: { kill(signal?: number | NodeJS.Signals): void }[] = [];
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  root.remove();
});

/** A stand-in Graph API that accepts every send. */
const graph = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch: (request) => Response.json(request.method === "POST" ? { recipient_id: "1", message_id: `m_sent_${crypto.randomUUID()}` } : {}),
});
afterAll(() => graph.stop(true));

function settings(storageUrl: string): string {
  return settingsToml({ storageUrl, logLevel: "info", extra: `[graph]\nurl = "http://127.0.0.1:${graph.port}"` });
}

function serve(dir: string, config: string): Running {
  const server = start(process.execPath, [join(REPO, "src", "main.ts"), "serve", "--config", config, "--port", "0", "--host", "127.0.0.1"], { cwd: dir });
  children.push(server.proc);
  return server;
}

function litestream(args: string[], cwd: string) {
  return Bun.spawn([LITESTREAM, ...args], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

/** Polls a state outside this process (Litestream's files) until it holds, or fails after `ms`. */
async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} did not come about within ${ms} ms`);
    await Bun.sleep(50);
  }
}

async function post(port: number, i: number): Promise<number> {
  const body = JSON.stringify({
    object: "page",
    entry: [
      {
        id: PAGE_ID,
        time: 1767225600123,
        messaging: [
          {
            sender: { id: `63000000000${i % 5}` },
            recipient: { id: PAGE_ID },
            timestamp: 1767225599876 + i,
            message: { mid: `m_ls_${i}`, text: `hello ${i}` },
          },
        ],
      },
    ],
  });
  const response = await fetch(`http://127.0.0.1:${port}/webhooks/support`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signBody(APP_SECRET, body) },
    body,
  });
  return response.status;
}

async function query(file: string, sql: string): Promise<string[]> {
  const client = createClient({ url: `file:${file}` });
  try {
    return (await client.execute(sql)).rows.map((row) => String(row[0]));
  } finally {
    client.close();
  }
}

async function restore(dir: string, out: string): Promise<void> {
  const proc = litestream(["restore", "-config", "litestream.yml", "-o", out, join(dir, "data", "bot.db")], dir);
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`litestream restore failed (${code}): ${stderr}`);
}

/** A folder with settings, an empty database file (0600) and Litestream replicating it, Litestream's tables already in it. */
async function site(name: string) {
  const dir = root.sub(name);
  const db = dir.join("data", "bot.db");
  dir.write("messenger-endpoint.toml", settings("file:data/bot.db"));
  mkdirSync(dir.join("data"), { mode: 0o700 });
  writeFileSync(db, "", { mode: 0o600 });
  dir.write(
    "litestream.yml",
    // Small intervals, and Litestream's own checkpoints every 100 pages, so that they happen while
    // the server writes.
    [
      "dbs:",
      `  - path: ${db}`,
      "    monitor-interval: 100ms",
      "    checkpoint-interval: 1s",
      "    min-checkpoint-page-count: 100",
      "    replicas:",
      "      - type: file",
      `        path: ${dir.join("replica")}`,
      "        sync-interval: 100ms",
      "",
    ].join("\n"),
  );
  const replicator = litestream(["replicate", "-config", "litestream.yml"], dir.path);
  children.push(replicator);
  let log = "";
  for (const stream of [replicator.stdout, replicator.stderr]) {
    void (async () => {
      for await (const chunk of stream) log += new TextDecoder().decode(chunk);
    })();
  }
  // Litestream adds its tables to the file as soon as it sees it, before our first start.
  await until(
    () =>
      query(db, "SELECT name FROM sqlite_schema WHERE name = '_litestream_seq'").then(
        (rows) => rows.length === 1,
        () => false,
      ), // busy while Litestream sets up
    "Litestream's first sync",
  );
  return { dir, db, replicator, log: () => log };
}

const N = 150;

test("replicated while the server runs; after kill -9, the restored file holds every acknowledged event and the server finishes the work", async () => {
  const { dir, replicator, log } = await site("kill");
  const server = serve(dir.path, "messenger-endpoint.toml");
  const listening = await server.waitFor((l) => l.msg === "listening", 30_000);
  expect(server.lines.some((l) => l.msg === "Litestream replicates this database: checkpoints are left to it")).toBe(true);
  const port = Number(listening.port);
  for (let i = 0; i < N; i++) expect(await post(port, i)).toBe(200);
  const acknowledged = Date.now();

  // Replicated up to the last acknowledgement: a restore holds all N events.
  let probes = 0;
  await until(async () => {
    const probe = dir.join(`probe-${++probes}.db`);
    await restore(dir.path, probe);
    return (await query(probe, "SELECT count(*) FROM inbox WHERE json_extract(event, '$.message.mid') LIKE 'm_ls_%'"))[0] === String(N);
  }, "the replica holding every acknowledged event");
  const lag = Date.now() - acknowledged;

  server.proc.kill("SIGKILL");
  replicator.kill("SIGKILL");
  await Promise.all([server.exited, replicator.exited]);

  const restored = dir.join("data", "restored.db");
  await restore(dir.path, restored);
  expect(await query(restored, "PRAGMA integrity_check")).toEqual(["ok"]);
  // What `messenger-endpoint restore` checks before it puts a backup in place (db/backup.ts).
  expect((await checkDatabaseFile(restored)).schemaProblem).toBeNull();
  const mids = await query(
    restored,
    "SELECT json_extract(event, '$.message.mid') FROM inbox WHERE json_extract(event, '$.message.mid') LIKE 'm_ls_%' ORDER BY id",
  );
  expect(new Set(mids)).toEqual(new Set(Array.from({ length: N }, (_, i) => `m_ls_${i}`)));
  // One generation: neither our checkpoints nor a lost position made Litestream start over.
  expect(log().match(/new generation/g)).toHaveLength(1);
  expect(existsSync(join(dir.path, "data", ".bot.db-litestream"))).toBe(true);
  console.log(`litestream: ${N} webhooks replicated ${lag} ms after the last 200 (${probes} restores)`);

  // The server on the restored file: no migration, no Litestream (its folder is the original's), the pending work done.
  dir.write("restored.toml", settings("file:data/restored.db"));
  const again = serve(dir.path, "restored.toml");
  await again.waitFor((l) => l.msg === "listening", 30_000);
  expect(again.lines.some((l) => l.msg === "database migrated")).toBe(false);
  expect(again.lines.some((l) => String(l.msg).startsWith("Litestream"))).toBe(false);
  await until(async () => (await query(restored, "SELECT count(*) FROM inbox WHERE status = 'pending'"))[0] === "0", "the pending events processed");
  expect(await query(restored, "SELECT count(*) FROM inbox WHERE json_extract(event, '$.message.mid') LIKE 'm_ls_%' AND status = 'done'")).toEqual([String(N)]);
  again.proc.kill("SIGTERM");
  expect(await again.exited).toBe(0);
  expect(statSync(restored).size).toBeGreaterThan(0);
}, 120_000);

test("a clean stop while Litestream replicates leaves the checkpoint to it: no wait on its read transaction, nothing lost", async () => {
  const { dir, replicator, log } = await site("stop");
  const server = serve(dir.path, "messenger-endpoint.toml");
  const port = Number((await server.waitFor((l) => l.msg === "listening", 30_000)).port);
  for (let i = 0; i < 20; i++) expect(await post(port, i)).toBe(200);
  server.proc.kill("SIGTERM");
  expect(await server.exited).toBe(0);
  const stopping = Date.parse(String(server.lines.find((l) => l.msg === "stopping: no new webhooks, finishing what was accepted")?.time));
  const stopped = Date.parse(String(server.lines.find((l) => l.msg === "stopped")?.time));
  // A wal_checkpoint(TRUNCATE) here waits out the busy timeout (5 s, db/client.ts) for
  // Litestream's read transaction.
  expect(stopped - stopping).toBeLessThan(4000);
  await until(async () => {
    await restore(dir.path, dir.join("after-stop.db"));
    const n = (await query(dir.join("after-stop.db"), "SELECT count(*) FROM inbox WHERE json_extract(event, '$.message.mid') LIKE 'm_ls_%'"))[0];
    if (n !== "20") Bun.spawnSync(["rm", "-f", dir.join("after-stop.db")]);
    return n === "20";
  }, "the replica holding the events");
  replicator.kill("SIGTERM");
  await replicator.exited;
  expect(log().match(/new generation/g)).toHaveLength(1);
}, 120_000);
