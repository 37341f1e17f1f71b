/**
 * The stand-in libSQL server (test/helpers/hrana-server.ts) speaks Hrana over HTTP as sqld does:
 * streams and batons, pipelines, batches and their conditions, stored SQL texts, values, errors and
 * their codes, the cursor endpoint, and what @libsql/client makes of them. With LIBSQL_TEST_URL set
 * the same requests go to that real server, so the stand-in's answers are checked against it
 * (test/helpers/libsql-target.ts); what only the stand-in can do (expiry on demand, a server with a
 * known token) is skipped there.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { libsqlTarget, REAL_SERVER, STAND_IN_ONLY, type LibsqlTarget } from "../helpers/libsql-target.ts";
import { until } from "../helpers/conversation.ts";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

const standInTest = (name: string, fn: () => Promise<void>) => (REAL_SERVER ? test.skip : test)(`${STAND_IN_ONLY} ${name}`, fn);

async function target(options: { streamIdleMs?: number } = {}): Promise<LibsqlTarget> {
  const t = await libsqlTarget(options);
  cleanup.push(() => t.close());
  return t;
}

/** One stream, request after request: the baton (and base URL) of each answer goes with the next. */
class Stream {
  baton: string | null = null;
  #base: string;
  constructor(
    readonly t: LibsqlTarget,
    readonly version: 2 | 3 = 2,
  ) {
    this.#base = t.url;
  }

  async send(requests: unknown[], path = "pipeline"): Promise<{ status: number; body: any }> {
    const response = await fetch(new URL(`v${this.version}/${path}`, `${this.#base}/`), {
      method: "POST",
      headers: { "content-type": "application/json", ...(this.t.authToken ? { authorization: `Bearer ${this.t.authToken}` } : {}) },
      body: JSON.stringify(path === "pipeline" ? { baton: this.baton, requests } : { baton: this.baton, batch: requests[0] }),
    });
    const text = await response.text();
    if (!response.ok) return { status: response.status, body: text };
    const body =
      path === "pipeline"
        ? JSON.parse(text)
        : text
            .trim()
            .split("\n")
            .map((line) => JSON.parse(line));
    const head = path === "pipeline" ? body : body[0];
    this.baton = head.baton;
    if (head.base_url) this.#base = head.base_url;
    return { status: response.status, body };
  }
}

const execute = (sql: string, args: unknown[] = []) => ({ type: "execute", stmt: { sql, args } });
const int = (n: number | bigint) => ({ type: "integer", value: String(n) });
const text = (value: string) => ({ type: "text", value });

describe("Hrana over HTTP", () => {
  test("GET /v2 answers 2xx: the version is spoken", async () => {
    const t = await target();
    expect((await fetch(`${t.url}/v2`)).ok).toBe(true);
  });

  test("values keep their types: integers as strings (beyond 2^53 too), floats, text, blobs in base64, null", async () => {
    const t = await target();
    const stream = new Stream(t);
    const big = 2n ** 62n + 1n;
    const { body } = await stream.send([
      execute("SELECT ? AS i, ? AS f, ? AS t, ? AS b, ? AS n, typeof(?) AS kind", [
        int(big),
        { type: "float", value: 2.5 },
        text("å"),
        { type: "blob", base64: "AQID" },
        { type: "null" },
        { type: "float", value: 5 },
      ]),
      { type: "close" },
    ]);
    const result = body.results[0].response.result;
    expect(result.cols.map((c: { name: string }) => c.name)).toEqual(["i", "f", "t", "b", "n", "kind"]);
    expect(result.rows[0]).toEqual([int(big), { type: "float", value: 2.5 }, text("å"), { type: "blob", base64: "AQID" }, { type: "null" }, text("real")]);
    expect(body.baton).toBeNull(); // closed
  });

  test("every request of a pipeline runs, in order; a failing statement is its own result, with its code", async () => {
    const t = await target();
    const stream = new Stream(t);
    const { body } = await stream.send([
      execute("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)"),
      execute("INSERT INTO t VALUES (?, ?)", [text("a"), int(1)]),
      execute("INSERT INTO t VALUES (?, ?)", [text("a"), int(2)]),
      execute("INSERT INTO t VALUES (?, ?), (?, ?)", [text("b"), int(2), text("c"), int(3)]),
      execute("SELECT 1; SELECT 2"),
      execute("SELECT ?"),
      execute("UPDATE t SET n = n + 1"),
      execute("SELECT count(*) FROM t"),
      { type: "execute", stmt: { sql: "SELECT k FROM t", want_rows: false } },
      { type: "close" },
    ]);
    const [create, one, duplicate, two, many, missing, update, count, unwanted] = body.results;
    expect(create.type).toBe("ok");
    expect(one.response.result).toMatchObject({ affected_row_count: 1, last_insert_rowid: "1" });
    expect(duplicate).toMatchObject({ type: "error", error: { code: "SQLITE_CONSTRAINT" } });
    expect(duplicate.error.message).toContain("UNIQUE constraint failed: t.k");
    expect(two.response.result).toMatchObject({ affected_row_count: 2, last_insert_rowid: "3" });
    expect(many).toMatchObject({ type: "error", error: { code: "SQL_MANY_STATEMENTS" } });
    expect(missing).toMatchObject({ type: "error", error: { code: "ARGS_INVALID" } });
    expect(update.response.result).toMatchObject({ affected_row_count: 3, last_insert_rowid: null });
    expect(count.response.result.rows).toEqual([[int(3)]]);
    expect(unwanted.response.result).toMatchObject({ cols: [{ name: "k" }], rows: [] });
  });

  test("arguments bind as SQLite numbers parameters: ?NNN by number, names with or without their prefix", async () => {
    const t = await target();
    const stream = new Stream(t);
    const { body } = await stream.send([
      execute("SELECT ?2, ?1, ?", [text("x"), text("y"), text("z")]),
      {
        type: "execute",
        stmt: {
          sql: "SELECT :a, @b, :a",
          named_args: [
            { name: ":a", value: int(1) },
            { name: "b", value: int(2) },
          ],
        },
      },
      execute("SELECT ?", [int(1), int(2)]),
      { type: "describe", sql: "SELECT :a AS one, ? AS two" },
      { type: "close" },
    ]);
    expect(body.results[0].response.result.rows).toEqual([[text("y"), text("x"), text("z")]]);
    expect(body.results[1].response.result.rows).toEqual([[int(1), int(2), int(1)]]);
    expect(body.results[2]).toMatchObject({ type: "error", error: { code: "ARGS_INVALID" } });
    expect(body.results[3].response.result).toEqual({
      params: [{ name: ":a" }, { name: null }],
      cols: [
        { name: "one", decltype: null },
        { name: "two", decltype: null },
      ],
      is_explain: false,
      is_readonly: true,
    });
  });

  test("the baton keeps a stream and its transaction across requests; a baton is good for one request", async () => {
    const t = await target();
    const stream = new Stream(t, 3);
    await stream.send([execute("CREATE TABLE t (n INTEGER)"), execute("BEGIN"), execute("INSERT INTO t VALUES (1)")]);
    const first = stream.baton!;
    expect(first).toEqual(expect.any(String));
    const inside = await stream.send([execute("SELECT count(*) FROM t"), { type: "get_autocommit" }]);
    expect(inside.body.results[0].response.result.rows).toEqual([[int(1)]]);
    expect(inside.body.results[1].response).toEqual({ type: "get_autocommit", is_autocommit: false });
    expect(stream.baton).not.toBe(first);
    // Another stream does not see the open transaction's row.
    const other = new Stream(t);
    expect((await other.send([execute("SELECT count(*) FROM t"), { type: "close" }])).body.results[0].response.result.rows).toEqual([[int(0)]]);
    // The used baton is refused, the whole request.
    const next = stream.baton;
    stream.baton = first;
    expect((await stream.send([execute("SELECT 1")])).status).toBe(400);
    stream.baton = next;
    await stream.send([execute("ROLLBACK"), { type: "close" }]);
  });

  test("batch steps run by their conditions (ok, error, not, and, or, is_autocommit); a skipped step has neither result nor error", async () => {
    const t = await target();
    const stream = new Stream(t, 3);
    const step = (sql: string, condition?: unknown) => ({ stmt: { sql }, ...(condition ? { condition } : {}) });
    const { body } = await stream.send([
      {
        type: "batch",
        batch: {
          steps: [
            step("SELECT 1"),
            step("SELECT nope"),
            step("SELECT 3", { type: "ok", step: 1 }),
            step("SELECT 4", { type: "error", step: 1 }),
            step("SELECT 5", {
              type: "and",
              conds: [
                { type: "ok", step: 0 },
                { type: "not", cond: { type: "ok", step: 2 } },
              ],
            }),
            step("SELECT 6", {
              type: "or",
              conds: [
                { type: "ok", step: 2 },
                { type: "error", step: 0 },
              ],
            }),
            step("SELECT 7", { type: "is_autocommit" }),
          ],
        },
      },
      { type: "close" },
    ]);
    const result = body.results[0].response.result;
    expect(result.step_results.map((r: any) => (r ? r.rows[0][0].value : null))).toEqual(["1", null, null, "4", "5", null, "7"]);
    expect(result.step_errors.map((e: any) => e?.code ?? null)).toEqual([null, "SQL_INPUT_ERROR", null, null, null, null, null]);
    // A condition naming a later step breaks the protocol: the whole request is refused.
    const bad = new Stream(t);
    expect((await bad.send([{ type: "batch", batch: { steps: [step("SELECT 1", { type: "ok", step: 0 })] } }])).status).toBe(400);
  });

  test("SQL texts stored on a stream are named by id in statements; an unknown id refuses the request", async () => {
    const t = await target();
    const stream = new Stream(t);
    const { body } = await stream.send([
      { type: "store_sql", sql_id: 7, sql: "SELECT ? + 1" },
      { type: "execute", stmt: { sql_id: 7, args: [int(41)] } },
      { type: "close_sql", sql_id: 7 },
    ]);
    expect(body.results[1].response.result.rows).toEqual([[int(42)]]);
    expect((await stream.send([{ type: "execute", stmt: { sql_id: 7 } }])).status).toBe(400);
  });

  test("a sequence runs statements separated by semicolons, a trigger's body whole", async () => {
    const t = await target();
    const stream = new Stream(t);
    const { body } = await stream.send([
      {
        type: "sequence",
        sql: "CREATE TABLE a (n); CREATE TABLE log (s TEXT); -- a comment; still one\nCREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO log VALUES ('x;' || new.n); END; INSERT INTO a VALUES (1);",
      },
      execute("SELECT s FROM log"),
      { type: "close" },
    ]);
    expect(body.results[0].response).toEqual({ type: "sequence" });
    expect(body.results[1].response.result.rows).toEqual([[text("x;1")]]);
  });

  test("the cursor endpoint answers a batch as lines of JSON: the baton first, then each step's entries", async () => {
    const t = await target();
    const stream = new Stream(t, 3);
    const { body } = await stream.send([{ steps: [{ stmt: { sql: "SELECT 1 AS one UNION ALL SELECT 2" } }, { stmt: { sql: "SELECT nope" } }] }], "cursor");
    expect(body[0]).toMatchObject({ baton: expect.any(String) });
    expect(body.slice(1).map((e: { type: string }) => e.type)).toEqual(["step_begin", "row", "row", "step_end", "step_error"]);
    expect(body[1]).toMatchObject({ step: 0, cols: [{ name: "one" }] });
    expect(body[5]).toMatchObject({ step: 1, error: { code: "SQL_INPUT_ERROR" } });
    await stream.send([{ type: "close" }]);
  });
});

describe("@libsql/client on the server", () => {
  test("an interactive transaction commits, another rolls back; integers come back exact", async () => {
    const t = await target();
    const client = createClient({ url: t.url, authToken: t.authToken, intMode: "bigint" });
    cleanup.push(() => client.close());
    await client.execute("CREATE TABLE t (n INTEGER)");
    const kept = await client.transaction("write");
    await kept.execute({ sql: "INSERT INTO t VALUES (?)", args: [2n ** 60n] });
    await kept.commit();
    const dropped = await client.transaction("write");
    await dropped.execute("INSERT INTO t VALUES (7)");
    await dropped.rollback();
    expect((await client.execute("SELECT n FROM t")).rows.map((r) => r.n)).toEqual([2n ** 60n]);
  });

  test("a batch is one transaction: a failing statement rolls back the others, and its error has SQLite's code", async () => {
    const t = await target();
    const client = createClient({ url: t.url, authToken: t.authToken });
    cleanup.push(() => client.close());
    await client.execute("CREATE TABLE t (k TEXT PRIMARY KEY)");
    const error = await client.batch(["INSERT INTO t VALUES ('a')", "INSERT INTO t VALUES ('a')"], "write").catch((e) => e);
    expect(error.code).toBe("SQLITE_CONSTRAINT");
    expect((await client.execute("SELECT count(*) AS n FROM t")).rows[0]!.n).toBe(0);
  });
});

describe("the stand-in's own rules", () => {
  standInTest("without the token (or with another) a request is answered 401", async () => {
    const t = await target();
    const post = (headers: Record<string, string>) =>
      fetch(`${t.url}/v2/pipeline`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: '{"baton":null,"requests":[]}' });
    const missing = await post({});
    expect([missing.status, ((await missing.json()) as { error: string }).error]).toEqual([
      401,
      "Unauthorized: `Expected authorization header but none given`",
    ]);
    expect((await post({ authorization: "Bearer wrong" })).status).toBe(401);
    expect((await post({ authorization: `Bearer ${t.authToken}` })).status).toBe(200);
  });

  standInTest("an idle stream expires: its transaction is rolled back and its baton answered 400 STREAM_EXPIRED", async () => {
    const t = await target({ streamIdleMs: 50 });
    const stream = new Stream(t);
    await stream.send([execute("CREATE TABLE t (n)"), execute("BEGIN"), execute("INSERT INTO t VALUES (1)")]);
    expect(t.standIn!.openStreams).toBe(1);
    await until(() => t.standIn!.openStreams === 0);
    const expired = await stream.send([execute("COMMIT")]);
    expect(expired.status).toBe(400);
    expect(JSON.parse(expired.body)).toEqual({ message: "The stream has expired due to inactivity", code: "STREAM_EXPIRED" });
    const other = new Stream(t);
    expect((await other.send([execute("SELECT count(*) FROM t"), { type: "close" }])).body.results[0].response.result.rows).toEqual([[int(0)]]);
  });
});
