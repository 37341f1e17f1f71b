/**
 * What one statement costs in the local driver (the `libsql` package under db/local-client.ts),
 * by the way its rows are read: an INSERT of one row with RETURNING read through the driver's
 * iterator (`all`: two calls into the driver) or with `get` (one call), against the same INSERT
 * without RETURNING (`run`). A table shaped like the outbox, with its two indexes, in a WAL file;
 * 20 rows per transaction. The three ways alternate in one process, so the machine's drift
 * between runs moves all three alike.
 *
 *   bun test/bench/driver.bench.ts
 */
import Database from "libsql";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROWS = Number(process.env.BENCH_ROWS ?? 40_000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const TABLE = `CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint_id TEXT NOT NULL, page_id TEXT NOT NULL, user_id TEXT NOT NULL,
  source TEXT NOT NULL, inbox_id INTEGER, session_id TEXT, kind TEXT NOT NULL, body TEXT NOT NULL, status TEXT DEFAULT 'pending' NOT NULL,
  attempts INTEGER DEFAULT 0 NOT NULL, next_attempt_at INTEGER, first_attempt_at INTEGER, last_error TEXT, message_id TEXT,
  created_at INTEGER NOT NULL, sent_at INTEGER, delivered_at INTEGER, read_at INTEGER);
  CREATE INDEX t_user ON t (endpoint_id, page_id, user_id, id);
  CREATE INDEX t_open ON t (endpoint_id, page_id, user_id, id) WHERE status IN ('pending', 'sending');`;
const INSERT =
  "INSERT INTO t (endpoint_id, page_id, user_id, source, inbox_id, session_id, kind, body, created_at, status, attempts, first_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const BODY = '{"messaging_type":"RESPONSE","message":{"text":"hello there"}}';

type Way = "all" | "get" | "run";

const dir = mkdtempSync(join(tmpdir(), "driver-bench-"));
try {
  const totals: Record<Way, number[]> = { all: [], get: [], run: [] };
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    for (const way of ["all", "get", "run"] as const) {
      const db = new Database(join(dir, `${way}-${repeat}.db`));
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec(TABLE);
      const statement = db.prepare(way === "run" ? INSERT : `${INSERT} RETURNING id`);
      if (way !== "run") statement.raw(true);
      let ms = 0;
      for (let group = 0; group < ROWS / 20; group++) {
        db.exec("BEGIN IMMEDIATE");
        const started = performance.now();
        for (let j = 0; j < 20; j++) {
          const i = group * 20 + j;
          const now = Date.now();
          const args = ["bench", "104857600012345", `55500${i % 1000}`, "flow", i, `s_${i % 1000}`, "message", BODY, now, "sending", 1, now];
          if (way === "all") statement.all(args);
          else if (way === "get") statement.get(args);
          else statement.run(args);
        }
        ms += performance.now() - started;
        db.exec("COMMIT");
      }
      db.close();
      totals[way].push((ms * 1000) / ROWS);
    }
  }
  for (const way of ["all", "get", "run"] as const)
    console.log(`${way.padEnd(3)}  ${totals[way].map((us) => us.toFixed(1)).join(" / ")} µs per INSERT (${ROWS} rows, ${REPEATS} runs)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
