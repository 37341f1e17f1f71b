/**
 * The libSQL server the remote tests run against: the stand-in (hrana-server.ts) on a fresh SQLite
 * file, with an auth token, or the real server that LIBSQL_TEST_URL names (with
 * LIBSQL_TEST_AUTH_TOKEN when it wants one). A real server's database is emptied before each use:
 * every table in it is dropped, so point LIBSQL_TEST_URL at a throwaway database. Faults can only
 * be injected into the stand-in: tests that need them are skipped against a real server.
 */
import { createClient, type Client } from "@libsql/client";
import { HranaServer, type HranaServerOptions } from "./hrana-server.ts";
import { tempDir, type TempDir } from "./tmp.ts";

/** The real libSQL server under test, or null: the stand-in. */
export const REAL_SERVER = process.env.LIBSQL_TEST_URL || null;

/** Why a test that needs the stand-in is skipped, for its name. */
export const STAND_IN_ONLY = REAL_SERVER ? "[skipped: faults cannot be injected into LIBSQL_TEST_URL]" : "[stand-in]";

export interface LibsqlTarget {
  url: string;
  authToken: string | undefined;
  /** The stand-in, for faults; null against a real server. */
  standIn: HranaServer | null;
  /** A client of the test's own (not the app's), for looking and seeding. */
  client: Client;
  close(): Promise<void>;
}

const STAND_IN_TOKEN = "stand-in-token-4f1c9a7e";

export async function libsqlTarget(options: Omit<HranaServerOptions, "file" | "authToken"> = {}): Promise<LibsqlTarget> {
  let dir: TempDir | null = null;
  let standIn: HranaServer | null = null;
  let url: string;
  let authToken: string | undefined;
  if (REAL_SERVER) {
    url = REAL_SERVER;
    authToken = process.env.LIBSQL_TEST_AUTH_TOKEN || undefined;
  } else {
    dir = tempDir("libsql");
    standIn = await HranaServer.start({ file: dir.join("server.db"), authToken: STAND_IN_TOKEN, ...options });
    url = standIn.url;
    authToken = STAND_IN_TOKEN;
  }
  const client = createClient({ url, authToken });
  if (REAL_SERVER) await empty(client);
  return {
    url,
    authToken,
    standIn,
    client,
    async close() {
      client.close();
      await standIn?.stop();
      dir?.remove();
    },
  };
}

/** Drops every table (and with them their indexes and triggers) and every view. */
async function empty(client: Client): Promise<void> {
  const objects = await client.execute("SELECT type, name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'");
  const drops = objects.rows.map((r) => `DROP ${r.type === "view" ? "VIEW" : "TABLE"} IF EXISTS "${String(r.name).replaceAll('"', '""')}"`);
  if (drops.length > 0) await client.migrate(drops);
}

/** A port nothing listens on (it was free a moment ago): a libSQL server that is not running. */
export async function closedPortUrl(): Promise<string> {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = server.port;
  await server.stop(true);
  return `http://127.0.0.1:${port}`;
}
