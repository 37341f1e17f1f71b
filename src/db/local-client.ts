/**
 * The libSQL `Client` interface over one local connection, with prepared statements cached by
 * SQL text. @libsql/client prepares every statement anew, asks for its columns twice and builds
 * each row with defineProperty; under load that was most of the server's time. Everything else
 * (drizzle, the write queue) sees the same interface as with @libsql/client, which is still used
 * for remote libSQL URLs.
 *
 * The local driver is synchronous: a call runs to completion before the next one starts, so one
 * connection needs no pool and no locking of its own.
 */
import Database from "libsql";
import type { Client, InArgs, InStatement, ResultSet, Row, TransactionMode } from "@libsql/client";

interface Prepared {
  run(...args: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  all(...args: unknown[]): unknown[][];
  get(...args: unknown[]): unknown[] | undefined;
  raw(toggle?: boolean): Prepared;
  columns(): { name: string }[];
  readonly reader: boolean;
}

interface Cached {
  statement: Prepared;
  columns: string[] | null; // null: does not return rows
  /** May change the database: not a SELECT, PRAGMA or EXPLAIN (an INSERT … RETURNING returns rows and writes). */
  writes: boolean;
  /** Returns one row at most (`atMostOneRow`): read with the driver's `get`, one call instead of an iterator's two (a write only inside a transaction). */
  single: boolean;
}

/** A value in a VALUES tuple that holds no parenthesis or comma of its own: a parameter, a quoted literal, a number, NULL. */
const TUPLE_VALUE = String.raw`(?:\?\d*|'[^']*'|-?\d+|NULL)`;
/** `INSERT INTO t (…) VALUES (one tuple)`, then no second tuple, then (after an upsert clause, perhaps) RETURNING. */
const ONE_ROW_INSERT = new RegExp(
  String.raw`^\s*INSERT\s+INTO\s+[\w"\x60]+\s*\([^()]*\)\s*VALUES\s*\(\s*${TUPLE_VALUE}(?:\s*,\s*${TUPLE_VALUE})*\s*\)(?!\s*,)[\s\S]*\bRETURNING\b`,
  "i",
);
/** A SELECT whose last clause is `LIMIT 1`: a trailing LIMIT belongs to the outermost query. */
const LIMIT_ONE = /^\s*(?:SELECT|WITH)\b[\s\S]*\bLIMIT\s+1\s*$/i;

/**
 * Whether a statement that returns rows returns one at most, as far as its text shows: an INSERT of
 * one VALUES tuple with RETURNING (an upsert too: one row in, one row out at most), or a query that
 * ends in `LIMIT 1`. Anything else (several tuples, INSERT … SELECT, UPDATE or DELETE … RETURNING,
 * a LIMIT bound as a parameter) is read as many rows.
 */
export function atMostOneRow(sql: string): boolean {
  return ONE_ROW_INSERT.test(sql) || LIMIT_ONE.test(sql);
}

const CACHE_LIMIT = 1000;

export class LocalClient implements Client {
  readonly protocol = "file";
  closed = false;
  readonly #db: InstanceType<typeof Database>;
  readonly #cache = new Map<string, Cached>();

  /** Called after each statement that may have written, before its transaction commits (db/checkpointer.ts follows the writes, a delay later). */
  onWrite: (() => void) | null = null;

  constructor(path: string, options: { timeoutMs?: number } = {}) {
    this.#db = new Database(path, { timeout: options.timeoutMs ?? 5000 } as never);
  }

  async execute(stmtOrSql: InStatement | string, args?: InArgs): Promise<ResultSet> {
    const stmt = typeof stmtOrSql === "string" ? { sql: stmtOrSql, args: args ?? [] } : stmtOrSql;
    return this.#run(stmt);
  }

  async batch(stmts: InStatement[], mode: TransactionMode = "deferred"): Promise<ResultSet[]> {
    return this.#inTransaction(mode, () => stmts.map((s) => this.#run(typeof s === "string" ? { sql: s, args: [] } : s)));
  }

  async migrate(stmts: InStatement[]): Promise<ResultSet[]> {
    this.#db.exec("PRAGMA foreign_keys = OFF");
    try {
      return await this.batch(stmts, "deferred");
    } finally {
      this.#db.exec("PRAGMA foreign_keys = ON");
    }
  }

  async executeMultiple(sql: string): Promise<void> {
    this.#db.exec(sql);
  }

  async transaction(): Promise<never> {
    throw new Error("interactive transactions are not used here: commit through the write queue (src/db/write-queue.ts)");
  }

  async sync(): Promise<never> {
    throw new Error("sync() is for embedded replicas, which this client does not open");
  }

  reconnect(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#cache.clear();
    this.#db.close();
  }

  #inTransaction<T>(mode: TransactionMode, fn: () => T): T {
    this.#db.exec(mode === "write" ? "BEGIN IMMEDIATE" : mode === "read" ? "BEGIN" : "BEGIN DEFERRED");
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      if (this.#db.inTransaction) this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  #prepare(sql: string): Cached {
    let cached = this.#cache.get(sql);
    if (cached) return cached;
    if (this.closed) throw new Error("the database is closed");
    const statement = this.#db.prepare(sql) as unknown as Prepared;
    let columns: string[] | null = null;
    if (statement.reader) {
      statement.raw(true);
      columns = statement.columns().map((c) => c.name);
    }
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear(); // multi-row INSERTs vary in length
    cached = { statement, columns, writes: !/^\s*(SELECT|PRAGMA|EXPLAIN)\b/i.test(sql), single: columns !== null && atMostOneRow(sql) };
    this.#cache.set(sql, cached);
    return cached;
  }

  #run(stmt: { sql: string; args?: InArgs }): ResultSet {
    const { statement, columns, writes, single } = this.#prepare(stmt.sql);
    const args = toArgs(stmt.args);
    if (columns) {
      // A write read with `get` only inside a transaction: alone, it would commit when `get` resets
      // it, and the driver drops what that reset returns (a commit that failed would look stored).
      const one = single && (!writes || this.#db.inTransaction);
      const rows = one ? this.#one(stmt.sql, statement, args, columns) : statement.all(args).map((values) => toRow(values, columns));
      if (writes) this.onWrite?.();
      return resultSet(columns, rows, 0, undefined);
    }
    const info = statement.run(args);
    if (writes) this.onWrite?.();
    return resultSet([], [], info.changes, BigInt(info.lastInsertRowid));
  }

  /**
   * The row of a statement that returns one at most. The driver's `get` steps once and then resets
   * the statement, but not when the step fails: the statement is then dropped from the cache, so
   * that its next use prepares it afresh instead of binding to one left mid-step.
   */
  #one(sql: string, statement: Prepared, args: unknown, columns: string[]): Row[] {
    let values: unknown[] | undefined;
    try {
      values = statement.get(args);
    } catch (error) {
      this.#cache.delete(sql);
      throw error;
    }
    return values === undefined ? [] : [toRow(values, columns)];
  }
}

function toArgs(args: InArgs | undefined): unknown {
  if (args === undefined) return [];
  if (Array.isArray(args)) return args.map(toValue);
  const named: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) named[key.replace(/^[:@$]/, "")] = toValue(value);
  return named;
}

function toValue(value: unknown): unknown {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value instanceof Date) return value.valueOf();
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (value === undefined) throw new TypeError("undefined cannot be passed as argument to the database");
  return value;
}

/** A row is the array of values, with the column names as extra properties. */
function toRow(values: unknown[], columns: string[]): Row {
  const row = values as unknown as Record<string, unknown>;
  for (let i = 0; i < columns.length; i++) {
    const name = columns[i]!;
    if (!(name in row)) row[name] = values[i];
  }
  return row as unknown as Row;
}

function resultSet(columns: string[], rows: Row[], rowsAffected: number, lastInsertRowid: bigint | undefined): ResultSet {
  return {
    columns,
    columnTypes: columns.map(() => ""),
    rows,
    rowsAffected,
    lastInsertRowid,
    toJSON: () => ({ columns, rows: rows.map((r) => Array.from(r as unknown as unknown[])), rowsAffected, lastInsertRowid: lastInsertRowid?.toString() }),
  };
}
