/**
 * A stand-in libSQL server for tests: Hrana over HTTP (`POST /v2/pipeline`, `/v3/pipeline`,
 * `/v3/cursor`, JSON encoding) backed by a SQLite file, on 127.0.0.1, so that the product's remote
 * path (`storage.url = "http://…"`, @libsql/client's HTTP client) runs in the tests. It answers as
 * sqld answers:
 *
 * - `GET /v2` and `GET /v3` answer 200: the versions it speaks. `GET /v3-protobuf` answers 404, so
 *   a client that asks for the Protobuf encoding falls back to JSON.
 * - A pipeline request carries a `baton` naming its stream (null: a new one). Each stream has its
 *   own SQLite connection (its own transaction) and its own stored SQL texts (`store_sql`, at most
 *   50 of at most 5000 bytes). The answer carries the next baton, or null once the stream is
 *   closed; a baton is good for one request (HMAC-signed, with a sequence number). A stream unused
 *   for `streamIdleMs` (sqld: 10 s) is closed, its open transaction rolled back, and a request
 *   naming it is answered 400 `STREAM_EXPIRED`.
 * - Every request of a pipeline runs, in order; a statement's error is that request's result
 *   (hrana-exec.ts has the codes). A request that breaks the protocol (an unknown baton or
 *   `sql_id`, a request after `close`) fails the whole HTTP request: 400, plain text.
 * - With `authToken`, pipeline and cursor requests need `Authorization: Bearer <token>`; anything
 *   else is answered 401 `{ "error": "Unauthorized: …" }`.
 *
 * Not spoken: the Protobuf encoding, Hrana over WebSocket, HTTP API v1 (`/v1/execute`), and
 * replication indexes. A write that meets another stream's open transaction fails with
 * `SQLITE_BUSY` at once (sqld would make it wait).
 *
 * Faults for tests (`fail`): answer with another HTTP status, answer a body that is not JSON,
 * hang up without answering, hold requests until `heal()`, or answer late; `down()` stops
 * listening (connections refused) and `up()` listens again on the same port.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { type HranaError, ProtocolError, SqlConnection, StmtError, type Batch, type BatchResult, type Stmt, sqlText } from "./hrana-exec.ts";

export interface HranaServerOptions {
  /** The SQLite file (created when missing). */
  file: string;
  /** Pipeline and cursor requests need `Authorization: Bearer <authToken>`. */
  authToken?: string;
  /** A stream unused this long is closed (sqld: 10 s). */
  streamIdleMs?: number;
  /** The port (default: any free one). */
  port?: number;
}

export type Fault =
  /** Answer with this HTTP status (and body, `text/plain` unless told). */
  | { kind: "status"; status: number; body?: string; contentType?: string }
  /** Answer 200 `application/json` with a body that is not JSON. */
  | { kind: "garbage" }
  /** Close the connection without an answer. */
  | { kind: "hang-up" }
  /** Keep the requests waiting until `heal()`; then they run and are answered. */
  | { kind: "hold" }
  /** Run and answer the requests after this many milliseconds. */
  | { kind: "delay"; ms: number };

const EXPIRED_KEPT_MS = 300_000; // sqld answers STREAM_EXPIRED (not "invalid baton") this long
const MAX_SQL_COUNT = 50;
const MAX_SQL_BYTES = 5000;
const REQUEST_TYPES = new Set(["close", "execute", "batch", "sequence", "describe", "store_sql", "close_sql", "get_autocommit"]);

interface Stream {
  id: string;
  conn: SqlConnection | null;
  sqls: Map<number, string>;
  seq: bigint;
  state: "available" | "acquired" | "expired";
  timer?: ReturnType<typeof setTimeout>;
}

type StreamResult = { type: "ok"; response: Record<string, unknown> } | { type: "error"; error: HranaError };

export class HranaServer {
  readonly file: string;
  /** Pipeline and cursor requests received (faulted ones too). */
  requests = 0;
  readonly #options: HranaServerOptions;
  readonly #key = randomBytes(32);
  readonly #streams = new Map<string, Stream>();
  #server: ReturnType<typeof Bun.serve> | null = null;
  #port: number;
  #fault: { fault: Fault; times: number } | null = null;
  #held: (() => void)[] = [];
  /** Requests being handled (held ones among them), settled when answered. */
  readonly #answering = new Set<Promise<Response>>();

  private constructor(options: HranaServerOptions) {
    this.#options = options;
    this.file = options.file;
    this.#port = options.port ?? 0;
  }

  static async start(options: HranaServerOptions): Promise<HranaServer> {
    const server = new HranaServer(options);
    const setup = new SqlConnection(options.file);
    setup.execute({ sql: "PRAGMA journal_mode = WAL" }, new Map()); // sqld's databases are in WAL mode
    setup.close();
    server.up();
    return server;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Streams open now (an open interactive transaction keeps one). */
  get openStreams(): number {
    return [...this.#streams.values()].filter((s) => s.conn !== null).length;
  }

  /** Requests held by a `hold` fault. */
  get held(): number {
    return this.#held.length;
  }

  /** Pipeline and cursor requests meet this fault from now on (the next `times` of them, or all). */
  fail(fault: Fault, options: { times?: number } = {}): void {
    this.#fault = { fault, times: options.times ?? Number.POSITIVE_INFINITY };
  }

  /** No more faults; held requests go on. Resolves once they are answered. */
  heal(): Promise<void> {
    this.#fault = null;
    const answered = [...this.#answering];
    for (const release of this.#held.splice(0)) release();
    return Promise.all(answered).then(() => undefined);
  }

  /** Listens (again, on the same port once it had one). */
  up(): void {
    if (this.#server) return;
    this.#server = Bun.serve({
      hostname: "127.0.0.1",
      port: this.#port,
      fetch: (request) => {
        const answer = this.#route(request);
        this.#answering.add(answer);
        void answer.finally(() => this.#answering.delete(answer));
        return answer;
      },
    });
    this.#port = this.#server.port!;
  }

  /** Stops listening and drops every connection and stream, as a server that went away. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const release of this.#held.splice(0)) release();
    await server?.stop(true);
    for (const stream of this.#streams.values()) this.#close(stream);
    this.#streams.clear();
  }

  async stop(): Promise<void> {
    this.#fault = null;
    await this.down();
  }

  async #route(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (request.method === "GET" && (path === "/v2" || path === "/v3")) return text(200, "Hello, this is HTTP API v2 (Hrana over HTTP)");
    if (request.method === "GET" && path === "/health") return new Response(null, { status: 200 });
    const endpoint =
      request.method !== "POST"
        ? null
        : path === "/v2/pipeline"
          ? { version: 2, cursor: false }
          : path === "/v3/pipeline"
            ? { version: 3, cursor: false }
            : path === "/v3/cursor"
              ? { version: 3, cursor: true }
              : null;
    if (!endpoint) return new Response(null, { status: 404 });
    this.requests++;
    const faulted = await this.#faulted();
    if (faulted) return faulted;
    const refused = this.#unauthorized(request);
    if (refused) return refused;
    let body: any;
    try {
      body = await request.json();
    } catch (error) {
      return text(400, `Cannot deserialize client message from JSON: ${(error as Error).message}`);
    }
    try {
      return endpoint.cursor ? this.#cursor(body) : this.#pipeline(body, endpoint.version);
    } catch (error) {
      if (error instanceof ProtocolError) return text(400, error.message);
      if (error instanceof ExpiredError) return Response.json({ message: error.message, code: "STREAM_EXPIRED" }, { status: 400 });
      return text(500, `Internal server error: ${(error as Error).message}`);
    }
  }

  /** The answer a fault gives instead of the real one, or null to go on (after a hold or delay). */
  async #faulted(): Promise<Response | null> {
    const current = this.#fault;
    if (!current) return null;
    if (--current.times <= 0) this.#fault = null;
    const { fault } = current;
    switch (fault.kind) {
      case "status":
        return new Response(fault.body ?? "", { status: fault.status, headers: { "content-type": fault.contentType ?? "text/plain" } });
      case "garbage":
        return new Response("<html><body>502 Bad Gateway</body></html>", { status: 200, headers: { "content-type": "application/json" } });
      case "hang-up":
        // A body that fails before its first byte: the connection is closed without an answer.
        return new Response(new ReadableStream({ pull: (controller) => controller.error() }), { headers: { "content-type": "application/json" } });
      case "hold":
        await new Promise<void>((resolve) => this.#held.push(resolve));
        return this.#server ? null : text(503, "stopped");
      case "delay":
        await Bun.sleep(fault.ms);
        return null;
    }
  }

  #unauthorized(request: Request): Response | null {
    const token = this.#options.authToken;
    if (token === undefined) return null;
    const header = request.headers.get("authorization");
    if (header === null) return Response.json({ error: "Unauthorized: `Expected authorization header but none given`" }, { status: 401 });
    const expected = Buffer.from(`Bearer ${token}`);
    const given = Buffer.from(header);
    if (given.length === expected.length && timingSafeEqual(given, expected)) return null;
    return Response.json({ error: "Unauthorized: `The JWT is invalid`" }, { status: 401 });
  }

  #pipeline(body: { baton?: string | null; requests?: unknown }, version: number): Response {
    if (!Array.isArray(body?.requests)) throw new ProtocolError("Cannot deserialize client message from JSON: `requests` is missing");
    for (const r of body.requests) {
      if (!REQUEST_TYPES.has((r as { type?: string })?.type ?? "")) throw new ProtocolError("StreamRequest type not recognized");
    }
    const stream = this.#acquire(body.baton ?? null);
    const results: StreamResult[] = [];
    try {
      for (const request of body.requests) results.push(this.#handle(stream, request, version));
    } catch (error) {
      // As sqld drops a stream whose request failed outside a statement.
      this.#close(stream);
      this.#streams.delete(stream.id);
      throw error;
    }
    return Response.json({ baton: this.#release(stream), base_url: null, results });
  }

  #handle(stream: Stream, request: any, version: number): StreamResult {
    const conn = () => {
      if (!stream.conn) throw new ProtocolError("Stream for this baton was closed");
      return stream.conn;
    };
    const ok = (response: Record<string, unknown>): StreamResult => ({ type: "ok", response: { type: request.type, ...response } });
    try {
      switch (request.type) {
        case "close":
          this.#close(stream);
          return ok({});
        case "execute":
          return ok({ result: conn().execute(request.stmt as Stmt, stream.sqls) });
        case "batch":
          return ok({ result: conn().batch(request.batch as Batch, stream.sqls, version) });
        case "sequence":
          conn().sequence(sqlText(request.sql, request.sql_id, stream.sqls));
          return ok({});
        case "describe":
          return ok({ result: conn().describe(sqlText(request.sql, request.sql_id, stream.sqls)) });
        case "store_sql": {
          const id = Number(request.sql_id);
          if (stream.sqls.has(id)) throw new ProtocolError(`SQL text ${id} already exists`);
          if (stream.sqls.size >= MAX_SQL_COUNT)
            throw new StmtError(`The server already stores ${stream.sqls.size} SQL texts, it cannot store more`, "SQL_STORE_TOO_MANY");
          const size = Buffer.byteLength(String(request.sql));
          if (size > MAX_SQL_BYTES) throw new StmtError(`The statement is too large to be stored: ${size} B/${MAX_SQL_BYTES} B`, "SQL_STORE_TOO_LARGE");
          stream.sqls.set(id, String(request.sql));
          return ok({});
        }
        case "close_sql":
          stream.sqls.delete(Number(request.sql_id));
          return ok({});
        default: // get_autocommit
          if (version < 3) throw new ProtocolError("The `get_autocommit` request is only supported in protocol version hrana3 and higher");
          return ok({ is_autocommit: conn().autocommit });
      }
    } catch (error) {
      if (error instanceof StmtError) return { type: "error", error: error.toJSON() };
      throw error;
    }
  }

  /** `/v3/cursor`: the batch's results as lines of JSON, after a first line with the baton. */
  #cursor(body: { baton?: string | null; batch?: Batch }): Response {
    const stream = this.#acquire(body?.baton ?? null);
    const lines: unknown[] = [];
    try {
      if (!stream.conn) throw new ProtocolError("Stream for this baton was closed");
      lines.push(...cursorEntries(stream.conn.batch(body.batch as Batch, stream.sqls, 3)));
    } catch (error) {
      if (!(error instanceof StmtError)) {
        this.#close(stream);
        this.#streams.delete(stream.id);
        throw error;
      }
      lines.push({ type: "error", error: error.toJSON() });
    }
    lines.unshift({ baton: this.#release(stream), base_url: null });
    return text(200, lines.map((line) => `${JSON.stringify(line)}\n`).join(""));
  }

  #acquire(baton: string | null): Stream {
    if (baton === null) {
      const stream: Stream = {
        id: randomBytes(8).toString("hex"),
        conn: new SqlConnection(this.file),
        sqls: new Map(),
        seq: randomBytes(8).readBigUInt64BE(),
        state: "acquired",
      };
      this.#streams.set(stream.id, stream);
      return stream;
    }
    const data = Buffer.from(baton, "base64");
    if (data.length !== 48 || !timingSafeEqual(data.subarray(16), this.#mac(data.subarray(0, 16)))) throw new ProtocolError("Received an invalid baton");
    const stream = this.#streams.get(data.subarray(0, 8).toString("hex"));
    if (!stream) throw new ProtocolError("Received an invalid baton");
    if (stream.state === "expired") throw new ExpiredError();
    if (stream.state === "acquired" || stream.seq !== data.readBigUInt64BE(8)) throw new ProtocolError("Received a baton that has already been used");
    clearTimeout(stream.timer);
    stream.state = "acquired";
    stream.seq = (stream.seq + 1n) & 0xffff_ffff_ffff_ffffn; // the next request needs a new baton
    return stream;
  }

  /** The baton for the stream's next request, or null when it was closed. */
  #release(stream: Stream): string | null {
    if (!stream.conn) {
      this.#streams.delete(stream.id);
      return null;
    }
    stream.state = "available";
    stream.timer = setTimeout(() => {
      this.#close(stream);
      stream.state = "expired";
      stream.timer = setTimeout(() => this.#streams.delete(stream.id), EXPIRED_KEPT_MS);
      stream.timer.unref();
    }, this.#options.streamIdleMs ?? 10_000);
    stream.timer.unref();
    const payload = Buffer.alloc(16);
    Buffer.from(stream.id, "hex").copy(payload, 0);
    payload.writeBigUInt64BE(stream.seq, 8);
    return Buffer.concat([payload, this.#mac(payload)])
      .toString("base64")
      .replace(/=+$/, "");
  }

  #close(stream: Stream): void {
    clearTimeout(stream.timer);
    stream.conn?.close(); // an open transaction is rolled back
    stream.conn = null;
  }

  #mac(payload: Uint8Array): Buffer {
    return createHmac("sha256", this.#key).update(payload).digest();
  }
}

class ExpiredError extends Error {
  constructor() {
    super("The stream has expired due to inactivity");
  }
}

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain" } });
}

/** A batch result as the cursor's entries: each step that ran, begun and ended (or failed). */
function cursorEntries(result: BatchResult): unknown[] {
  const entries: unknown[] = [];
  result.step_results.forEach((step, i) => {
    const error = result.step_errors[i];
    if (error) entries.push({ type: "step_error", step: i, error });
    if (!step) return;
    entries.push({ type: "step_begin", step: i, cols: step.cols });
    for (const row of step.rows) entries.push({ type: "row", row });
    entries.push({ type: "step_end", affected_row_count: step.affected_row_count, last_insert_rowid: step.last_insert_rowid });
  });
  return entries;
}
