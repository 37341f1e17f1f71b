/**
 * A database whose writes fail on demand with SQLite's "disk full" error, as a full disk makes
 * them fail: reads go on working. Only the app's client is wrapped (every write of the app goes
 * through it, see src/db/write-queue.ts); the test reads the real database.
 */
import type { Client, InStatement } from "@libsql/client";
import type { Database } from "../../src/db/client.ts";

const WRITE = /^\s*(INSERT|UPDATE|DELETE|REPLACE)\b/i;

export interface FailingStorage {
  /** For `startConversation({ wrapDatabase })`. */
  wrap(database: Database): Database;
  /**
   * Writes fail from now on (all of them, or those whose SQL matches), or work again (false); with
   * "disk full" unless another error is given.
   */
  fail(on: boolean | ((sql: string) => boolean), error?: () => Error): void;
  /** Writes refused so far. */
  readonly refused: number;
}

export function diskFullError(): Error {
  return Object.assign(new Error("database or disk is full"), { name: "SqliteError", code: "SQLITE_FULL", rawCode: 13 });
}

export function failingStorage(): FailingStorage {
  let rule: boolean | ((sql: string) => boolean) = false;
  let makeError = diskFullError;
  let refused = 0;
  const check = (stmt: InStatement | string) => {
    const sql = typeof stmt === "string" ? stmt : stmt.sql;
    if (!WRITE.test(sql)) return;
    if (rule === true || (typeof rule === "function" && rule(sql))) {
      refused++;
      throw makeError();
    }
  };
  return {
    wrap(database) {
      const real = database.client;
      const client = new Proxy(real, {
        get(target, prop, receiver) {
          if (prop === "execute") {
            return async (stmt: InStatement | string, args?: unknown) => {
              check(stmt);
              return target.execute(stmt as never, args as never);
            };
          }
          if (prop === "batch") {
            return async (stmts: (InStatement | string)[], mode?: unknown) => {
              for (const s of stmts) check(s);
              return target.batch(stmts as never, mode as never);
            };
          }
          const value = Reflect.get(target, prop, receiver);
          return typeof value === "function" ? value.bind(target) : value;
        },
      }) as Client;
      return { ...database, client, checkpoint: () => database.checkpoint(), close: () => database.close() };
    },
    fail(on, error = diskFullError) {
      rule = on;
      makeError = error;
    },
    get refused() {
      return refused;
    },
  };
}
