/**
 * The compiled executable, copied alone into an empty folder: it starts, migrates a fresh
 * database, verifies and stores signed webhooks, refuses duplicates, backs up online, and stops
 * cleanly. Run against a fresh build, or against $MESSENGER_ENDPOINT_BINARY in CI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir, totalmem } from "node:os";
import { basename, join } from "node:path";
import { createClient } from "@libsql/client";
import { signBody } from "../../src/webhook/signature.ts";
import { installBinary, run, start, type Running } from "./binary-helpers.ts";
import { ASSUMED_RAM_BYTES, FTL_VARIABLE, RAM_VARIABLE, RESTARTED_VARIABLE } from "../../src/cli/engine.ts";

const SECRET = "smoke-app-secret-0123456789";
const VERIFY = "smoke-verify-token";
const PAGE = "104857600012345";

function settings(port: number, db = "data/smoke.db") {
  return `
[server]
port = ${port}
warm_up_turns = 40
[storage]
url = "file:${db}"
[flows.echo]
kind = "script"
module = "builtin:echo"
[[endpoints]]
id = "smoke"
flow = "echo"
verify_token = "${VERIFY}"
app_secret = "${SECRET}"
pages = [ { id = "${PAGE}", access_token = "smoke-page-token-abcdef" } ]
`;
}

function body(mid: string, text: string) {
  return JSON.stringify({
    object: "page",
    entry: [
      {
        id: PAGE,
        time: 1767225600123,
        messaging: [{ sender: { id: "6301234567890123" }, recipient: { id: PAGE }, timestamp: 1767225599876, message: { mid, text } }],
      },
    ],
  });
}

async function post(base: string, raw: string, signature = signBody(SECRET, raw)) {
  return fetch(`${base}/webhooks/smoke`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signature },
    body: raw,
  });
}

async function inboxRows(dbFile: string) {
  const client = createClient({ url: `file:${dbFile}` });
  try {
    const rows = await client.execute("SELECT endpoint_id, page_id, user_id, kind, dedup_key FROM inbox ORDER BY id");
    return rows.rows.map((r) => Object.fromEntries(rows.columns.map((c, i) => [c, r[i]])));
  } finally {
    client.close();
  }
}

const listening = (l: Record<string, unknown>) => l.msg === "listening";
/** The process is qemu running the binary (the arm64 release check, test/smoke/release.test.ts). */
const emulated = (pid: number) => basename(readlinkSync(`/proc/${pid}/exe`)).startsWith("qemu");
/** A process's environment, as the kernel has it. */
const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");

describe("compiled binary", () => {
  let install: Awaited<ReturnType<typeof installBinary>>;
  beforeAll(async () => {
    install = await installBinary();
  });
  afterAll(() => install?.cleanup());

  test("version and help", async () => {
    const v = await run(install.bin, ["--version"], install.dir);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^messenger-endpoint \d+\.\d+\.\d+/);
    const h = await run(install.bin, ["backup", "--help"], install.dir);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("backup OUT_FILE");
    const bad = await run(install.bin, ["frobnicate"], install.dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown command "frobnicate"');
  });

  test("demo: starts alone in an empty folder with an unusable TMPDIR, migrates, serves", async () => {
    const dir = mkdtempSync(join(tmpdir(), "me-demo-"));
    try {
      const { bin } = await installBinaryInto(dir, install.bin);
      // A TMPDIR where nothing can be created: the driver must not depend on it (noexec /tmp on VMs).
      const noTmp = await noexecTmp(dir);
      const server = start(bin, ["--port", "0"], { cwd: dir, env: { TMPDIR: noTmp.path } });
      try {
        const line = await server.waitFor(listening);
        expect(line.demo).toBe(true);
        // serve replaced its own image to set the engine's settings (src/cli/engine.ts): same pid.
        // Under qemu-user (the arm64 release check) the host cannot run the arm64 image it asks
        // for, and the server goes on as it started, as it would anywhere the restart failed.
        // On a machine with no more RAM than that, the memory view is not set.
        const restarted = !emulated(server.proc.pid);
        expect(environ(server.proc.pid).includes(`${RAM_VARIABLE}=${ASSUMED_RAM_BYTES}`)).toBe(restarted && totalmem() > ASSUMED_RAM_BYTES);
        expect(environ(server.proc.pid).includes(`${FTL_VARIABLE}=0`)).toBe(restarted);
        // It kept its name (the kernel's: 15 characters at most), not "exe" from /proc/self/exe.
        if (restarted) expect(readFileSync(`/proc/${server.proc.pid}/comm`, "utf8").trim()).toBe(basename(bin).slice(0, 15));
        const base = String(line.url);
        expect((await fetch(`${base}/healthz`)).status).toBe(200);
        const ready = await fetch(`${base}/readyz`);
        expect(ready.status).toBe(200);
        expect(existsSync(join(dir, "data", "messenger-endpoint.db"))).toBe(true);
        expect(server.stderr()).toContain("DEMO MODE");
        // The binary alone has no examples/ folder: the banner points to what it does contain.
        expect(server.stderr()).toContain("`messenger-endpoint init`");
        expect(server.stderr()).not.toContain("examples/");
        expect(server.stderr()).toContain("/webhooks/demo");
      } finally {
        server.proc.kill("SIGTERM");
        expect(await server.exited).toBe(0);
        noTmp.cleanup();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an operator's own BUN_JSC_forceRAMSize or BUN_JSC_useFTLJIT is kept, and the other one still set", async () => {
    const ram = totalmem() > ASSUMED_RAM_BYTES ? [`${RAM_VARIABLE}=${ASSUMED_RAM_BYTES}`] : [];
    const cases: { env: Record<string, string>; restarts: boolean; added: string[] }[] = [
      // Both set: no restart, the environment as given (under qemu too).
      { env: { [RAM_VARIABLE]: "536870912", [FTL_VARIABLE]: "1" }, restarts: false, added: [] },
      // One set: the restart adds the other (the RAM view only on a machine with more than 4 GiB).
      { env: { [FTL_VARIABLE]: "1" }, restarts: true, added: ram },
    ];
    for (const c of cases) {
      const dir = mkdtempSync(join(tmpdir(), "me-ram-"));
      try {
        const server = start(install.bin, ["--port", "0"], { cwd: dir, env: c.env });
        try {
          await server.waitFor(listening);
          const all = environ(server.proc.pid);
          const vars = all.filter((v) => v.startsWith(`${RAM_VARIABLE}=`) || v.startsWith(`${FTL_VARIABLE}=`));
          const restarted = c.restarts && !emulated(server.proc.pid);
          // Without a restart (or under qemu, where it fails) the environment is the one given.
          const given = Object.entries(c.env).map(([k, v]) => `${k}=${v}`);
          expect(vars.sort()).toEqual([...given, ...(restarted ? c.added : [])].sort());
          expect(all.includes(`${RESTARTED_VARIABLE}=1`)).toBe(restarted);
        } finally {
          server.proc.kill("SIGTERM");
          expect(await server.exited).toBe(0);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  test("init in an empty folder writes the settings; once filled in, it serves and healthcheck says ready", async () => {
    const dir = mkdtempSync(join(tmpdir(), "me-init-"));
    try {
      const { bin } = await installBinaryInto(dir, install.bin);
      const init = await run(bin, ["init"], dir);
      expect(init.stderr).toBe("");
      expect(init.stdout).toContain(`wrote ${join(dir, "messenger-endpoint.toml")} (mode 0600)`);
      expect(init.code).toBe(0);
      expect((await run(bin, ["init"], dir)).code).toBe(2);
      const fresh = await run(bin, ["check"], dir);
      expect(fresh.code).toBe(1);
      expect(fresh.stdout.match(/^error: [^:]+/gm)).toEqual([
        "error: endpoints[0].app_secret",
        "error: endpoints[0].pages[0].id",
        "error: endpoints[0].pages[0].access_token",
      ]);
      const env = { FB_PAGE_ID: PAGE, FB_PAGE_TOKEN: "smoke-page-token-abcdef", FB_APP_SECRET: SECRET };
      const filled = await run(bin, ["check"], dir, env);
      expect(filled.stdout).toContain("valid (1 endpoint");
      expect(filled.code).toBe(0);
      const server = start(bin, ["--port", "0"], { cwd: dir, env });
      let port = 0;
      try {
        port = Number((await server.waitFor(listening)).port);
        const ready = await run(bin, ["healthcheck", "--port", String(port)], dir, env);
        expect(ready.stdout.trim()).toBe(`ready: http://127.0.0.1:${port}/readyz`);
        expect(ready.code).toBe(0);
      } finally {
        server.proc.kill("SIGTERM");
        expect(await server.exited).toBe(0);
      }
      const stopped = await run(bin, ["healthcheck", "--port", String(port)], dir, env);
      expect(stopped.stderr).toContain("unreachable");
      expect(stopped.code).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A copy of the binary in `<temp>/bin` whose driver goes to `<temp>/cache` (MESSENGER_ENDPOINT_NATIVE_DIR). */
  async function withNativeDir(use: (o: { dir: string; bin: string; cache: string; env: Record<string, string> }) => Promise<void>) {
    const dir = mkdtempSync(join(tmpdir(), "me-native-"));
    try {
      mkdirSync(join(dir, "bin"));
      const { bin } = await installBinaryInto(join(dir, "bin"), install.bin);
      const cache = join(dir, "cache");
      await use({ dir, bin, cache, env: { MESSENGER_ENDPOINT_NATIVE_DIR: cache } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test("MESSENGER_ENDPOINT_NATIVE_DIR (examples/messenger-endpoint.service) takes the driver instead of the binary's folder", async () => {
    await withNativeDir(async ({ dir, bin, cache, env }) => {
      const result = await run(bin, ["version"], dir, env);
      expect(result.code).toBe(0);
      expect(readdirSync(cache).filter((f) => /^libsql-[0-9a-f]{16}\.node$/.test(f))).toHaveLength(1);
      expect(existsSync(join(dir, "bin", ".native"))).toBe(false);
    });
  });

  test("a driver unpacked before is checked against the digest written at build time: a changed one is replaced", async () => {
    await withNativeDir(async ({ dir, bin, cache, env }) => {
      expect((await run(bin, ["version"], dir, env)).code).toBe(0);
      const [name] = readdirSync(cache).filter((f) => /^libsql-[0-9a-f]{16}\.node$/.test(f));
      const driver = readFileSync(join(cache, name!));
      // The name is the digest of the driver the build embedded (scripts/compile.ts).
      const digest = createHash("sha256").update(driver).digest("hex");
      expect(name).toBe(`libsql-${digest.slice(0, 16)}.node`);
      writeFileSync(join(cache, name!), Buffer.concat([driver, Buffer.from("tampered")]));
      expect((await run(bin, ["version"], dir, env)).code).toBe(0);
      expect(readFileSync(join(cache, name!)).equals(driver)).toBe(true);
    });
  });

  describe("with a settings file", () => {
    let server: Running;
    let base: string;
    const dbFile = () => join(install.dir, "data", "smoke.db");

    beforeAll(async () => {
      writeFileSync(join(install.dir, "settings.toml"), settings(0));
      server = start(install.bin, ["serve", "--config", "settings.toml"], { cwd: install.dir });
      base = String((await server.waitFor(listening)).url);
      // server.warm_up_turns = 40 (src/cli/warm-up.ts): every made-up turn answered inside the process.
      expect((await server.waitFor((l) => l.msg === "warmed up")).turns).toBe(40);
    });
    afterAll(() => {
      if (server.proc.exitCode === null) server.proc.kill("SIGKILL");
    });

    test("answers the verification handshake", async () => {
      const ok = await fetch(`${base}/webhooks/smoke?hub.mode=subscribe&hub.verify_token=${VERIFY}&hub.challenge=1158201444`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toBe("1158201444");
      const wrong = await fetch(`${base}/webhooks/smoke?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1`);
      expect(wrong.status).toBe(403);
    });

    test("stores a signed POST once, rejects a bad signature", async () => {
      const raw = body("m_smoke_1", "hello");
      expect((await post(base, raw)).status).toBe(200);
      expect((await post(base, raw)).status).toBe(200); // Facebook's redelivery
      const forged = await post(base, body("m_smoke_2", "forged"), signBody("wrong-secret", "x"));
      expect(forged.status).toBe(401);
      expect(await forged.text()).not.toContain(signBody(SECRET, body("m_smoke_2", "forged")).slice(7));
      const rows = await inboxRows(dbFile());
      expect(rows).toEqual([{ endpoint_id: "smoke", page_id: PAGE, user_id: "6301234567890123", kind: "message", dedup_key: "message:m_smoke_1" }]);
    });

    test("a second instance on the same database fails loudly", async () => {
      const second = await run(install.bin, ["serve", "--config", "settings.toml"], install.dir);
      expect(second.code).toBe(2);
      expect(second.stderr).toContain("in use by another messenger-endpoint process");
    });

    test("a second instance on the same port fails loudly", async () => {
      const port = new URL(base).port;
      writeFileSync(join(install.dir, "other.toml"), settings(Number(port), "data/other.db"));
      const second = await run(install.bin, ["serve", "--config", "other.toml"], install.dir);
      expect(second.code).toBe(2);
      expect(second.stderr).toContain(`port ${port} on 127.0.0.1 is already in use`);
    });

    test("backs up online and refuses to overwrite; restore refuses while the server runs", async () => {
      const out = join(install.dir, "backup.db");
      const b = await run(install.bin, ["backup", out, "--config", "settings.toml"], install.dir);
      expect(b.stderr).toBe("");
      expect(b.code).toBe(0);
      expect(b.stdout).toContain("integrity check ok");
      expect((await inboxRows(out)).length).toBe(1);
      const again = await run(install.bin, ["backup", out, "--config", "settings.toml"], install.dir);
      expect(again.code).toBe(2);
      expect(again.stderr).toContain("never overwrites");
      const r = await run(install.bin, ["restore", out, "--config", "settings.toml"], install.dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("in use");
    });

    test("SIGTERM stops cleanly with exit 0, and the stored event survives", async () => {
      server.proc.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      expect(server.lines.some((l) => l.msg === "stopped")).toBe(true);
      expect((await inboxRows(dbFile())).length).toBe(1);
      // Every log line is JSON with a level.
      for (const line of server.lines) expect(typeof line.level).toBe("string");
      // No secret in any log line.
      const all = JSON.stringify(server.lines) + server.stderr();
      for (const secret of [SECRET, VERIFY, "smoke-page-token-abcdef"]) expect(all).not.toContain(secret);
    });

    test("restore after the stop puts the backup in place and keeps a safety copy", async () => {
      const r = await run(install.bin, ["restore", join(install.dir, "backup.db"), "--config", "settings.toml"], install.dir);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("the previous database is kept at");
      expect((await inboxRows(dbFile())).length).toBe(1);
      const m = await run(install.bin, ["migrate", "--config", "settings.toml"], install.dir);
      expect(m.code).toBe(0);
      expect(m.stdout).toContain("applied 0 migrations");
    });
  });
});

async function installBinaryInto(dir: string, from: string) {
  const bin = join(dir, "messenger-endpoint");
  writeFileSync(bin, new Uint8Array(await Bun.file(from).arrayBuffer()), { mode: 0o755 });
  return { bin };
}

/**
 * A TMPDIR the binary cannot use: a real `noexec` tmpfs when we may mount one (root on Linux),
 * otherwise a path below a regular file, where nothing can be created at all.
 */
async function noexecTmp(dir: string): Promise<{ path: string; cleanup(): void }> {
  const mountPoint = join(dir, "noexec-tmp");
  mkdirSync(mountPoint);
  if (process.getuid?.() === 0) {
    const m = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "noexec,size=16m", "tmpfs", mountPoint], { stderr: "pipe" });
    if (m.exitCode === 0) {
      return { path: mountPoint, cleanup: () => void Bun.spawnSync(["umount", mountPoint]) };
    }
  }
  const blocker = join(dir, "not-a-folder");
  writeFileSync(blocker, "");
  return { path: join(blocker, "tmp"), cleanup: () => {} };
}
