/** `init` (src/cli/init.ts) and `healthcheck` (src/cli/healthcheck.ts) through the command line. */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { createApp } from "../../src/app.ts";
import { openDatabase } from "../../src/db/client.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { readyzUrl } from "../../src/cli/healthcheck.ts";
import { cli, collectingLogger, configFromToml, startTestApp, tempDir, type TestApp } from "../helpers/index.ts";

const root = tempDir("init-healthcheck");
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  root.remove();
});
let n = 0;
const workdir = () => root.sub(`w${++n}`);

const FILLED_IN = { FB_PAGE_ID: "104857600012345", FB_PAGE_TOKEN: "EAAG-page-token-init", FB_APP_SECRET: "app-secret-init-0123" };

describe("init", () => {
  test("writes ./messenger-endpoint.toml, 0600, with fresh secrets, and check names exactly what is left to fill in", async () => {
    const dir = workdir();
    const { code, io } = await cli(["init"], dir.path);
    expect(code).toBe(0);
    const file = dir.join("messenger-endpoint.toml");
    expect(io.stdout.join("\n")).toContain(`wrote ${file} (mode 0600)`);
    expect(io.stdout.join("\n")).toContain("messenger-endpoint check");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, "utf8");
    const verifyToken = /^verify_token = "([^"]+)"/m.exec(text)![1]!;
    const adminKey = /^api_keys = \["([^"]+)"\]/m.exec(text)![1]!;
    expect(verifyToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(adminKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(adminKey).not.toBe(verifyToken);
    // The secrets are written to the file only, never printed.
    expect(io.text()).not.toContain(verifyToken);
    expect(io.text()).not.toContain(adminKey);

    const fresh = await cli(["check"], dir.path);
    expect(fresh.code).toBe(1);
    const errors = fresh.io.stdout.filter((l) => l.startsWith("error: "));
    expect(errors.map((l) => l.slice("error: ".length).split(":")[0])).toEqual([
      "endpoints[0].app_secret",
      "endpoints[0].pages[0].id",
      "endpoints[0].pages[0].access_token",
    ]);

    const filled = await cli(["check"], dir.path, FILLED_IN);
    expect(filled.io.stdout.join("\n")).not.toContain("error:");
    expect(filled.io.stdout.at(-1)).toBe(`${file}: valid (1 endpoint, 3 flows, 1 Page)`);
    expect(filled.code).toBe(0);
  });

  test("another run writes other secrets", async () => {
    const a = workdir();
    const b = workdir();
    await cli(["init"], a.path);
    await cli(["init"], b.path);
    const token = (dir: typeof a) => /^verify_token = "([^"]+)"/m.exec(readFileSync(dir.join("messenger-endpoint.toml"), "utf8"))![1];
    expect(token(a)).not.toBe(token(b));
  });

  test("init FILE writes there, creating its folder; $MESSENGER_ENDPOINT_CONFIG names the default", async () => {
    const dir = workdir();
    expect((await cli(["init", "etc/me/settings.toml"], dir.path)).code).toBe(0);
    expect(statSync(dir.join("etc/me/settings.toml")).mode & 0o777).toBe(0o600);
    const env = await cli(["init"], dir.path, { MESSENGER_ENDPOINT_CONFIG: "from-env.toml" });
    expect(env.code).toBe(0);
    expect(env.io.stdout.join("\n")).toContain(`messenger-endpoint check --config ${dir.join("from-env.toml")}`);
    expect(statSync(dir.join("from-env.toml")).isFile()).toBe(true);
  });

  test("never overwrites: an existing file stays as it was, exit 2 with what to do", async () => {
    const dir = workdir();
    const file = dir.write("messenger-endpoint.toml", "# mine\n");
    const { code, io } = await cli(["init"], dir.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain(`${file} already exists and was left as it is`);
    expect(readFileSync(file, "utf8")).toBe("# mine\n");
    expect(io.stdout).toEqual([]);
  });

  test("check without a settings file points to init", async () => {
    const { code, io } = await cli(["check"], workdir().path);
    expect(code).toBe(1);
    expect(io.text()).toContain('with "messenger-endpoint init"');
    expect(io.text()).not.toContain("examples/");
  });
});

describe("healthcheck", () => {
  /** A settings file whose server.port is `port` (the rest does not matter to healthcheck). */
  function settingsFor(port: number, host = "127.0.0.1"): string {
    const file = workdir().join("settings.toml");
    writeFileSync(file, `[server]\nhost = "${host}"\nport = ${port}\n`, { mode: 0o600 });
    return file;
  }

  async function listening(t: { app: TestApp["app"] }): Promise<number> {
    t.app.server.listen({ hostname: "127.0.0.1", port: 0 });
    cleanups.push(async () => {
      if (t.app.server.server) await t.app.server.stop(true); // a test may have stopped it
    });
    return t.app.server.server!.port!;
  }

  test("0 when the server is ready", async () => {
    const t = await startTestApp();
    cleanups.push(() => t.close());
    const port = await listening(t);
    const { code, io } = await cli(["healthcheck", "--config", settingsFor(port, "0.0.0.0")], root.path);
    expect(io.stderr).toEqual([]);
    expect(io.stdout).toEqual([`ready: http://127.0.0.1:${port}/readyz`]);
    expect(code).toBe(0);
  });

  test("1 when its database is failing, with the reason", async () => {
    const t = await startTestApp();
    cleanups.push(() => t.close());
    const port = await listening(t);
    t.database.close();
    const { code, io } = await cli(["healthcheck", "--config", settingsFor(port)], root.path);
    expect(code).toBe(1);
    expect(io.stdout[0]).toBe(`not ready: http://127.0.0.1:${port}/readyz`);
    expect(io.stdout.join("\n")).toContain("database: the database is not writable");
  });

  test("1 when it has no endpoints, with the reason", async () => {
    const dir = workdir();
    const config = configFromToml(`[storage]\nurl = "file:data/x.db"\n`, { dir: dir.path });
    const database = await openDatabase(config.storage.url);
    await applyMigrations(database);
    const app = await createApp({ config, db: database, log: collectingLogger().log });
    cleanups.push(async () => {
      await app.shutdown();
      database.close();
    });
    const port = await listening({ app });
    const { code, io } = await cli(["healthcheck", "--config", settingsFor(port)], root.path);
    expect(code).toBe(1);
    expect(io.stdout.join("\n")).toContain("settings: ");
    expect(io.stdout.join("\n")).toContain("[[endpoints]]");
  });

  test("2 when no server answers (a stopped one)", async () => {
    const t = await startTestApp();
    cleanups.push(() => t.close());
    const port = await listening(t);
    await t.app.server.stop(true);
    const { code, io } = await cli(["healthcheck", "--config", settingsFor(port)], root.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain(`unreachable: http://127.0.0.1:${port}/readyz`);
    expect(io.stdout).toEqual([]);
  });

  test("2 when another program answers on that port", async () => {
    const other = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("hello", { status: 200 }) });
    cleanups.push(() => other.stop(true));
    const { code, io } = await cli(["healthcheck", "--config", settingsFor(other.port!)], root.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain("without messenger-endpoint's readiness report");
  });

  test("2 within the time limit when the server does not answer", async () => {
    const silent = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Promise<Response>(() => {}) });
    cleanups.push(() => silent.stop(true));
    const started = performance.now();
    const { code, io } = await cli(["healthcheck", "--config", settingsFor(silent.port!)], root.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain("no answer within 3 s");
    expect(performance.now() - started).toBeLessThan(6000);
  });

  test("a wildcard address is asked on loopback", () => {
    expect(readyzUrl("0.0.0.0", 8080)).toBe("http://127.0.0.1:8080/readyz");
    expect(readyzUrl("::", 8080)).toBe("http://[::1]:8080/readyz");
    expect(readyzUrl("10.0.0.5", 81)).toBe("http://10.0.0.5:81/readyz");
    expect(readyzUrl("fd00::5", 81)).toBe("http://[fd00::5]:81/readyz");
  });
});
