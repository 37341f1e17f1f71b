/**
 * One Hrana stream's SQL connection, for the stand-in libSQL server (hrana-server.ts): statements,
 * batches and sequences in the protocol's JSON shapes, run by the `libsql` driver on the SQLite
 * file, answered as sqld answers them.
 *
 * Errors come in three kinds, as with sqld:
 * - a statement's error (`StmtError`): its SQLite error, or a problem with its text or arguments,
 *   answered `{ message, code }` in the stream result or batch step. SQLite errors have the code of
 *   their primary result code as sqld names it (`SQLITE_CONSTRAINT`, `SQLITE_BUSY`; SQLite's plain
 *   `SQLITE_ERROR` is `SQLITE_UNKNOWN`) and the message `SQLite error: <SQLite's message>`, except
 *   that a statement SQLite cannot compile is `SQL_PARSE_ERROR` for a syntax error (sqld parses
 *   statements itself first) and `SQL_INPUT_ERROR` when SQLite points at the offending token (a
 *   column or function that does not exist);
 * - a protocol error (`ProtocolError`): the request itself is wrong (an unknown `sql_id`, both
 *   `sql` and `sql_id`, a condition naming a later step), answered HTTP 400 for the whole request;
 * - anything else is the server's own failure (HTTP 500).
 */
import { Database as BunDatabase } from "bun:sqlite";
import Database from "libsql";
import { describeStatement, splitStatements } from "./hrana-sql.ts";

export type Value =
  | { type: "null" }
  | { type: "integer"; value: string }
  | { type: "float"; value: number }
  | { type: "text"; value: string }
  | { type: "blob"; base64: string };

export interface Stmt {
  sql?: string | null;
  sql_id?: number | null;
  args?: Value[];
  named_args?: { name: string; value: Value }[];
  want_rows?: boolean | null;
}

export type BatchCond =
  | { type: "ok"; step: number }
  | { type: "error"; step: number }
  | { type: "not"; cond: BatchCond }
  | { type: "and"; conds: BatchCond[] }
  | { type: "or"; conds: BatchCond[] }
  | { type: "is_autocommit" };

export interface Batch {
  steps: { condition?: BatchCond | null; stmt: Stmt }[];
}

export interface HranaError {
  message: string;
  code: string;
}

export interface StmtResult {
  cols: { name: string | null; decltype: string | null }[];
  rows: Value[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
  rows_read: number;
  rows_written: number;
  query_duration_ms: number;
}

export interface BatchResult {
  step_results: (StmtResult | null)[];
  step_errors: (HranaError | null)[];
}

/** The request breaks the protocol: HTTP 400 for the whole request, as sqld answers it. */
export class ProtocolError extends Error {}

/** A statement failed: answered in the stream result (or the batch step) with its code. */
export class StmtError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }

  toJSON(): HranaError {
    return { message: this.message, code: this.code };
  }
}

/** SQLite's primary result codes by number, named as sqld names them. */
const SQLITE_CODES: Record<number, string> = {
  2: "INTERNAL",
  3: "PERM",
  4: "ABORT",
  5: "BUSY",
  6: "LOCKED",
  7: "NOMEM",
  8: "READONLY",
  9: "INTERRUPT",
  10: "IOERR",
  11: "CORRUPT",
  12: "NOTFOUND",
  13: "FULL",
  14: "CANTOPEN",
  15: "PROTOCOL",
  17: "SCHEMA",
  18: "TOOBIG",
  19: "CONSTRAINT",
  20: "MISMATCH",
  21: "MISUSE",
  22: "NOLFS",
  23: "AUTH",
  25: "RANGE",
  26: "NOTADB",
};

const MAX_INTEGER = 2n ** 63n - 1n;

interface Prepared {
  readonly reader: boolean;
  raw(toggle?: boolean): Prepared;
  safeIntegers(toggle?: boolean): Prepared;
  columns(): { name: string; type: string | null }[];
  all(args: unknown[]): unknown[][];
  run(args: unknown[]): { changes: number };
}

interface Driver {
  readonly inTransaction: boolean;
  prepare(sql: string): Prepared;
  close(): void;
}

export class SqlConnection {
  readonly #db: Driver;
  readonly #file: string;
  /** Only to learn where SQLite points in a statement it cannot compile (the `libsql` driver does not say). */
  #probe: BunDatabase | null = null;

  /**
   * No busy timeout: the driver waits synchronously, so a lock held by another stream of this
   * server could never be released while it waits; a conflicting write gets SQLITE_BUSY at once.
   */
  constructor(file: string) {
    this.#db = new Database(file, { timeout: 0 } as never) as unknown as Driver;
    this.#file = file;
  }

  get autocommit(): boolean {
    return !this.#db.inTransaction;
  }

  close(): void {
    this.#db.close();
    this.#probe?.close();
  }

  /** An `execute` request. Throws StmtError or ProtocolError. */
  execute(stmt: Stmt, sqls: ReadonlyMap<number, string>): StmtResult {
    return this.#run(resolve(stmt, sqls), stmt);
  }

  /** A `batch` request: each step runs when its condition holds; its error is the step's. */
  batch(batch: Batch, sqls: ReadonlyMap<number, string>, version: number): BatchResult {
    if (!Array.isArray(batch?.steps)) throw new ProtocolError("Cannot deserialize client message from JSON: `steps` is missing");
    // Checked before anything runs, as sqld converts the whole batch first.
    const steps = batch.steps.map((step, i) => {
      if (step.condition) checkCond(step.condition, i, version);
      return { sql: resolve(step.stmt, sqls), stmt: step.stmt, condition: step.condition ?? null };
    });
    const outcomes: ("ok" | "error" | "skipped")[] = [];
    const result: BatchResult = { step_results: [], step_errors: [] };
    for (const step of steps) {
      if (step.condition && !this.#holds(step.condition, outcomes)) {
        outcomes.push("skipped");
        result.step_results.push(null);
        result.step_errors.push(null);
        continue;
      }
      try {
        result.step_results.push(this.#run(step.sql, step.stmt));
        result.step_errors.push(null);
        outcomes.push("ok");
      } catch (error) {
        if (!(error instanceof StmtError)) throw error;
        result.step_results.push(null);
        result.step_errors.push(error.toJSON());
        outcomes.push("error");
      }
    }
    return result;
  }

  /** A `sequence` request: the statements of one text, in order, until one fails. */
  sequence(sql: string): void {
    for (const text of splitStatements(sql)) this.#run(text, { want_rows: false });
  }

  /** A `describe` request. `is_readonly` is told from the statement's verb (SELECT, VALUES, EXPLAIN). */
  describe(sql: string) {
    const text = single(sql);
    const info = describeStatement(text);
    const columns = this.#prepare(text).columns();
    const verb = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? "";
    return {
      params: info.params.map((name) => ({ name })),
      cols: columns.map((c) => ({ name: c.name, decltype: c.type ?? null })),
      is_explain: info.explain,
      is_readonly: info.explain || verb === "SELECT" || verb === "VALUES" || (verb === "WITH" && !info.writes),
    };
  }

  /**
   * As the specification has it, `ok` and `error` are both false for a step that was skipped
   * (sqld's own evaluation takes a skipped step for a failed one; @libsql/client never asks).
   */
  #holds(cond: BatchCond, outcomes: readonly string[]): boolean {
    switch (cond.type) {
      case "ok":
        return outcomes[cond.step] === "ok";
      case "error":
        return outcomes[cond.step] === "error";
      case "not":
        return !this.#holds(cond.cond, outcomes);
      case "and":
        return cond.conds.every((c) => this.#holds(c, outcomes));
      case "or":
        return cond.conds.some((c) => this.#holds(c, outcomes));
      case "is_autocommit":
        return this.autocommit;
    }
  }

  #prepare(sql: string): Prepared {
    try {
      return this.#db.prepare(sql);
    } catch (error) {
      const failure = sqliteError(error);
      if (!(failure instanceof StmtError) || failure.code !== "SQLITE_UNKNOWN") throw failure;
      const offset = this.#errorOffset(sql);
      throw offset < 0 ? failure : new StmtError(`SQL input error: ${(error as Error).message} (at offset ${offset})`, "SQL_INPUT_ERROR");
    }
  }

  /** The byte offset SQLite gives for its error compiling `sql`, or -1. */
  #errorOffset(sql: string): number {
    this.#probe ??= new BunDatabase(this.#file);
    try {
      this.#probe.prepare(sql).finalize();
      return -1;
    } catch (error) {
      return (error as { byteOffset?: number }).byteOffset ?? -1;
    }
  }

  #scalar(sql: string): unknown {
    return this.#prepare(sql).raw(true).safeIntegers(true).all([])[0]![0];
  }

  #run(sql: string, stmt: Stmt): StmtResult {
    const started = performance.now();
    const info = describeStatement(sql);
    const prepared = this.#prepare(sql);
    const args = bind(info.params, stmt, info.explain);
    const cols = prepared.columns().map((c) => ({ name: c.name, decltype: c.type ?? null }));
    let rows: unknown[][] = [];
    let changes = 0;
    try {
      if (prepared.reader) rows = prepared.raw(true).safeIntegers(true).all(args);
      else changes = prepared.run(args).changes;
    } catch (error) {
      throw sqliteError(error);
    }
    // As sqld: affected rows only for INSERT, UPDATE and DELETE, the rowid only for an INSERT.
    const affected = info.writes ? (prepared.reader ? Number(this.#scalar("SELECT changes()")) : changes) : 0;
    return {
      cols,
      rows: stmt.want_rows === false ? [] : rows.map((row) => row.map(encodeValue)),
      affected_row_count: affected,
      last_insert_rowid: info.insert ? String(this.#scalar("SELECT last_insert_rowid()")) : null,
      rows_read: 0,
      rows_written: 0,
      query_duration_ms: performance.now() - started,
    };
  }
}

/** The one statement of a `Stmt` (its `sql`, or the text stored under its `sql_id`). */
function resolve(stmt: Stmt, sqls: ReadonlyMap<number, string>): string {
  if (typeof stmt !== "object" || stmt === null) throw new ProtocolError("Cannot deserialize client message from JSON: `stmt` is missing");
  if ((stmt.args?.length ?? 0) > 0 && (stmt.named_args?.length ?? 0) > 0) {
    throw new StmtError("Specifying both positional and named arguments is not supported", "ARGS_BOTH_POSITIONAL_AND_NAMED");
  }
  return single(sqlText(stmt.sql, stmt.sql_id, sqls));
}

/** `sql` or `sql_id`, exactly one of them. */
export function sqlText(sql: string | null | undefined, sqlId: number | null | undefined, sqls: ReadonlyMap<number, string>): string {
  const hasSql = typeof sql === "string";
  const hasId = typeof sqlId === "number";
  if (hasSql && hasId) throw new ProtocolError("Either `sql` or `sql_id` are required, but not both");
  if (hasSql) return sql;
  if (!hasId) throw new ProtocolError("Either `sql` or `sql_id` are required");
  const stored = sqls.get(sqlId);
  if (stored === undefined) throw new ProtocolError(`SQL text ${sqlId} not found`);
  return stored;
}

function single(sql: string): string {
  const statements = splitStatements(sql);
  if (statements.length === 0) throw new StmtError("SQL string does not contain any statement", "SQL_NO_STATEMENT");
  if (statements.length > 1) throw new StmtError("SQL string contains more than one statement", "SQL_MANY_STATEMENTS");
  return statements[0]!;
}

function checkCond(cond: BatchCond, step: number, version: number): void {
  switch (cond?.type) {
    case "ok":
    case "error":
      if (!Number.isInteger(cond.step) || cond.step < 0 || cond.step >= step) throw new ProtocolError("Invalid reference to step in a batch condition");
      return;
    case "not":
      checkCond(cond.cond, step, version);
      return;
    case "and":
    case "or":
      for (const c of cond.conds ?? []) checkCond(c, step, version);
      return;
    case "is_autocommit":
      if (version < 3) throw new ProtocolError("BatchCond of type `is_autocommit` is only supported in protocol version hrana3 and higher");
      return;
    default:
      throw new ProtocolError("BatchCond type not recognized");
  }
}

/**
 * The arguments by parameter number, checked as sqld checks them: no more arguments than
 * parameters, and a value for each parameter (`?NNN` takes argument NNN; `:a` takes the named
 * argument `:a` or `a`). An EXPLAIN may leave parameters unbound.
 */
function bind(params: readonly (string | null)[], stmt: Stmt, explain: boolean): unknown[] {
  const positional = (stmt.args ?? []).map(decodeValue);
  const named = new Map((stmt.named_args ?? []).map((a) => [a.name, decodeValue(a.value)]));
  const given = positional.length + named.size;
  const invalid = (why: string) => new StmtError(`Arguments do not match SQL parameters: ${why}`, "ARGS_INVALID");
  if (params.length < given) throw invalid(`too many parameters, expected ${params.length} found ${given}`);
  const values: unknown[] = [];
  for (let i = 0; i < params.length; i++) {
    const name = params[i];
    let value: unknown;
    if (name === null || name === undefined) value = positional[i];
    else if (name.startsWith("?")) value = positional[Number(name.slice(1)) - 1];
    else value = named.has(name) ? named.get(name) : named.get(name.slice(1));
    if (value === undefined) {
      if (explain) return values;
      throw invalid(`value for parameter ${name ?? i + 1} not found`);
    }
    values.push(value);
  }
  return values;
}

function decodeValue(value: Value): unknown {
  switch (value?.type) {
    case "null":
      return null;
    case "integer": {
      if (typeof value.value !== "string" || !/^-?\d+$/.test(value.value))
        throw new ProtocolError("Cannot deserialize client message from JSON: invalid integer");
      const n = BigInt(value.value);
      if (n > MAX_INTEGER || n < -MAX_INTEGER - 1n) throw new ProtocolError("Cannot deserialize client message from JSON: integer out of range");
      return n;
    }
    case "float":
      if (typeof value.value !== "number") throw new ProtocolError("Cannot deserialize client message from JSON: invalid float");
      return value.value;
    case "text":
      if (typeof value.value !== "string") throw new ProtocolError("Cannot deserialize client message from JSON: invalid text");
      return value.value;
    case "blob":
      return Buffer.from(String(value.base64), "base64");
    default:
      throw new ProtocolError("Value type not recognized");
  }
}

/** A value read with safe integers: integers come as bigint, every other number is a float. */
function encodeValue(value: unknown): Value {
  if (value === null || value === undefined) return { type: "null" };
  if (typeof value === "bigint") return { type: "integer", value: value.toString() };
  if (typeof value === "number") return { type: "float", value };
  if (typeof value === "string") return { type: "text", value };
  if (value instanceof Uint8Array) return { type: "blob", base64: Buffer.from(value).toString("base64").replace(/=+$/, "") };
  throw new Error(`unexpected value from SQLite: ${typeof value}`);
}

/** The driver's error as sqld reports it (syntax errors as sqld's parser reports them). */
function sqliteError(error: unknown): unknown {
  const e = error as { rawCode?: unknown; message?: unknown };
  if (typeof e?.rawCode !== "number") return error;
  const message = String(e.message);
  const primary = e.rawCode & 0xff;
  if (primary === 1 && /syntax error|incomplete input|unrecognized token/.test(message)) {
    return new StmtError(`SQL string could not be parsed: ${message}`, "SQL_PARSE_ERROR");
  }
  return new StmtError(`SQLite error: ${message}`, `SQLITE_${SQLITE_CODES[primary] ?? "UNKNOWN"}`);
}
