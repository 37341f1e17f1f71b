import { afterAll, describe, expect, test } from "bun:test";
import { createApp } from "../../src/app.ts";
import { openDatabase } from "../../src/db/client.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import {
  APP_SECRET,
  PAGE_TOKEN,
  VERIFY_TOKEN,
  collectingLogger,
  configFromToml,
  fixtureText,
  get,
  settingsToml,
  startTestApp,
  tempDir,
  textBody,
  type TestApp,
  type TestAppOptions,
} from "../helpers/index.ts";

const apps: TestApp[] = [];
const root = tempDir("ops");
afterAll(async () => {
  for (const t of apps) await t.close();
  root.remove();
});

async function app(options: TestAppOptions = {}): Promise<TestApp> {
  const t = await startTestApp(options);
  apps.push(t);
  return t;
}

describe("/healthz", () => {
  test("200 while the process runs, even with the database gone", async () => {
    const t = await app();
    const res = await t.handle(get("/healthz"));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    t.database.close();
    expect((await t.handle(get("/healthz"))).status).toBe(200);
  });
});

describe("/readyz", () => {
  test("200 with every check ok", async () => {
    const t = await app();
    const res = await t.handle(get("/readyz"));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ready", checks: { settings: "ok", database: "ok", pages: "ok" } });
  });

  test("503 when the database is closed, saying why", async () => {
    const t = await app();
    t.database.close();
    const res = await t.handle(get("/readyz"));
    expect(res.status).toBe(503);
    const body = (await res.json()) as { status: string; checks: Record<string, string> };
    expect(body.status).toBe("not_ready");
    expect(body.checks.settings).toBe("ok");
    expect(body.checks.database).toStartWith("the database is not writable");
  });

  test("503 when no endpoint is configured", async () => {
    const dir = root.sub("no-endpoints");
    const config = configFromToml(`[storage]\nurl = "file:data/x.db"\n`, { dir: dir.path });
    const database = await openDatabase(config.storage.url);
    try {
      await applyMigrations(database);
      const a = await createApp({ config, db: database, log: collectingLogger().log });
      const res = await a.http.handle(get("/readyz"));
      expect(res.status).toBe(503);
      expect(((await res.json()) as { checks: Record<string, string> }).checks.settings).toContain("[[endpoints]]");
    } finally {
      database.close();
    }
  });

  test("503 once shutdown has begun", async () => {
    const t = await app();
    await t.app.shutdown();
    const res = await t.handle(get("/readyz"));
    expect(res.status).toBe(503);
    expect(((await res.json()) as { checks: Record<string, string> }).checks.process).toBe("shutting down");
  });

  test("a failing registered check makes it 503; a throwing one too", async () => {
    const t = await app();
    t.app.readiness.add("lanes", () => "Page 1 is paused");
    t.app.readiness.add("boom", () => {
      throw new Error("check crashed");
    });
    const body = (await (await t.handle(get("/readyz"))).json()) as { checks: Record<string, string> };
    expect(body.checks).toMatchObject({ lanes: "Page 1 is paused", boom: "check crashed", database: "ok" });
  });
});

describe("/metrics", () => {
  test("Prometheus text format with the webhook counters", async () => {
    const t = await app();
    await t.post("support", textBody("m_1"));
    await t.post("support", fixtureText("dashboard-ping"));
    await t.post("support", textBody("m_2"), { secret: null });
    const res = await t.handle(get("/metrics"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    expect(text.endsWith("\n")).toBe(true);
    expect(text).toContain("# TYPE messenger_webhook_requests_total counter");
    expect(text).toContain("# HELP messenger_webhook_requests_total ");
    expect(text).toContain('messenger_webhook_requests_total{endpoint="support",outcome="stored"} 1');
    expect(text).toContain('messenger_webhook_requests_total{endpoint="support",outcome="ignored"} 1');
    expect(text).toContain('messenger_webhook_requests_total{endpoint="support",outcome="bad_signature"} 1');
    expect(text).toContain('messenger_webhook_events_total{endpoint="support",kind="message",result="stored"} 1');
    expect(text).toContain("# TYPE messenger_webhook_ack_seconds histogram");
    expect(text).toContain('messenger_webhook_ack_seconds_bucket{endpoint="support",le="+Inf"} 3');
    expect(text).toContain('messenger_webhook_ack_seconds_count{endpoint="support"} 3');
    // Every sample line is `name{labels} value` or `name value`.
    for (const line of text.trimEnd().split("\n")) {
      if (line.startsWith("#")) expect(line).toMatch(/^# (HELP|TYPE) [a-z_]+ /);
      else expect(line).toMatch(/^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$|^[a-z_]+(\{.*\})? [+-]Inf$/);
    }
  });

  test("no secrets in the metrics", async () => {
    const t = await app();
    await t.post("support", textBody("m_1"));
    const text = await (await t.handle(get("/metrics"))).text();
    for (const secret of [APP_SECRET, VERIFY_TOKEN, PAGE_TOKEN]) expect(text).not.toContain(secret);
  });

  test("404 when metrics are switched off", async () => {
    const t = await app({ toml: settingsToml({ storageUrl: "file:data/test.db", extra: "[metrics]\nenabled = false" }) });
    expect((await t.handle(get("/metrics"))).status).toBe(404);
    expect((await t.handle(get("/healthz"))).status).toBe(200);
  });
});

describe("routing", () => {
  test("an unknown path is a JSON 404", async () => {
    const t = await app();
    const res = await t.handle(get("/nothing/here"));
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "not_found", message: "no route for GET /nothing/here" });
  });
});
