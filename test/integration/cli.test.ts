import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { VERSION } from "../../src/version.ts";
import { USAGE } from "../../src/cli/usage.ts";
import { APPLICATION_ID, APP_VERSION_KEY, knownMigrations } from "../../src/db/identity.ts";
import { cli, settingsToml, tempDir, REPO, VERIFY_TOKEN, APP_SECRET, PAGE_TOKEN, PAGE_TOKEN_2 } from "../helpers/index.ts";

const root = tempDir("cli");
afterAll(() => root.remove());
let n = 0;
/** A fresh working folder, optionally with ./messenger-endpoint.toml (0600: it holds secrets). */
function workdir(settings?: string) {
  const dir = root.sub(`w${++n}`);
  if (settings !== undefined) chmodSync(dir.write("messenger-endpoint.toml", settings), 0o600);
  return dir;
}

describe("version and help", () => {
  test("version and --version print the version", async () => {
    const dir = workdir();
    for (const argv of [["version"], ["--version"], ["-v"]]) {
      const { code, io } = await cli(argv, dir.path);
      expect(code).toBe(0);
      expect(io.stdout).toEqual([`messenger-endpoint ${VERSION}`]);
      expect(io.stderr).toEqual([]);
    }
  });

  test("--help prints the usage of each command", async () => {
    const dir = workdir();
    for (const command of ["serve", "init", "check", "healthcheck", "migrate", "backup", "restore", "version"]) {
      const { code, io } = await cli([command, "--help"], dir.path);
      expect(code).toBe(0);
      expect(io.stdout.join("\n")).toBe(USAGE[command]!);
      expect(io.stdout.join("\n")).toContain(`Usage: messenger-endpoint ${command}`);
    }
  });

  test("help prints the main usage; help COMMAND that command's", async () => {
    const dir = workdir();
    const main = await cli(["help"], dir.path);
    expect(main.code).toBe(0);
    expect(main.io.stdout.join("\n")).toContain("Commands:");
    const { io } = await cli(["help", "backup"], dir.path);
    expect(io.stdout.join("\n")).toBe(USAGE.backup!);
  });

  test("--help alone prints the main usage with the list of commands", async () => {
    const dir = workdir();
    for (const argv of [["--help"], ["-h"]]) {
      const { code, io } = await cli(argv, dir.path);
      expect(code).toBe(0);
      expect(io.stdout.join("\n")).toContain("Commands:");
    }
  });

  test("--help does not run the command", async () => {
    const dir = workdir(settingsToml({ storageUrl: "file:data/x.db" }));
    const { code } = await cli(["migrate", "--help"], dir.path);
    expect(code).toBe(0);
    expect(existsSync(dir.join("data"))).toBe(false);
  });
});

describe("usage errors exit 1", () => {
  test("an unknown command", async () => {
    const { code, io } = await cli(["frobnicate"], workdir().path);
    expect(code).toBe(1);
    expect(io.stderr.join("\n")).toContain('unknown command "frobnicate"');
    expect(io.stderr.join("\n")).toContain("Commands:");
  });

  test("an unknown option", async () => {
    const { code, io } = await cli(["check", "--strict"], workdir().path);
    expect(code).toBe(1);
    expect(io.stderr.join("\n")).toContain("unknown option --strict");
  });

  test("an extra argument (a settings file without --config, say)", async () => {
    const { code, io } = await cli(["check", "bot.toml"], workdir().path);
    expect(code).toBe(1);
    expect(io.stderr.join("\n")).toContain('unexpected argument "bot.toml" for check (settings go with --config FILE)');
  });

  test("backup and restore without their file", async () => {
    const dir = workdir(settingsToml());
    for (const command of ["backup", "restore"]) {
      const { code, io } = await cli([command], dir.path);
      expect(code).toBe(1);
      expect(io.stderr.join("\n")).toContain(`${command} needs`);
    }
  });
});

describe("check", () => {
  test("a valid file: exit 0 with a summary", async () => {
    const dir = workdir(settingsToml());
    const { code, io } = await cli(["check"], dir.path);
    expect(code).toBe(0);
    expect(io.stdout).toEqual([`${dir.join("messenger-endpoint.toml")}: valid (1 endpoint, 1 flow, 2 Pages)`]);
  });

  test("a valid file without app_secret: valid, with a warning that anyone can post", async () => {
    const dir = workdir(settingsToml({ endpoints: [{ id: "open", appSecret: null }] }));
    const { code, io } = await cli(["check"], dir.path);
    expect(code).toBe(0);
    expect(io.stdout[0]).toBe("warning: endpoints[0].app_secret is not set: endpoint open accepts unsigned webhooks from anyone; set it to the App Secret");
  });

  test("--config and $MESSENGER_ENDPOINT_CONFIG name the file", async () => {
    const dir = workdir();
    const file = dir.write("conf/bot.toml", settingsToml());
    expect((await cli(["check", "--config", "conf/bot.toml"], dir.path)).code).toBe(0);
    expect((await cli(["check"], dir.path, { MESSENGER_ENDPOINT_CONFIG: file })).code).toBe(0);
  });

  test("an invalid file: exit 1 and every problem printed with its path", async () => {
    const text = `
[server]
port = "http"
[log]
level = "verbose"
[flows.echo]
kind = "script"
module = "builtin:echo"
[[endpoints]]
id = "support"
flow = "echo"
verify_token = "vt-123456"
pages = [ { id = "104857600012345", access_token = "tok-0001" }, { id = "104857600067890" } ]
`;
    const dir = workdir(text);
    const { code, io } = await cli(["check"], dir.path);
    expect(code).toBe(1);
    const out = io.stdout.join("\n");
    expect(out).toContain('error: server.port: expected a whole number, got "http"');
    expect(out).toContain('error: log.level: expected one of "debug", "info", "warn", "error", got "verbose"');
    expect(out).toContain("error: endpoints[0].pages[1].access_token: missing");
    expect(out).toContain(`${dir.join("messenger-endpoint.toml")}: invalid (3 problems)`);
  });

  test("warnings are printed, for valid and for invalid files", async () => {
    const valid = workdir(settingsToml().replace("verify_token = ", 'verfy_token = "x"\nverify_token = '));
    const a = await cli(["check"], valid.path);
    expect(a.code).toBe(0);
    expect(a.io.stdout).toContain('warning: endpoints[0].verfy_token: unknown key, ignored (did you mean "verify_token"?)');

    const invalid = workdir(`[sever]\nport = 1\n[log]\nlevel = 3\n`);
    const b = await cli(["check"], invalid.path);
    expect(b.code).toBe(1);
    expect(b.io.stdout).toContain('warning: sever: unknown key, ignored (did you mean "server"?)');
  });

  test("an unset environment variable", async () => {
    const dir = workdir(settingsToml().replace(`"${VERIFY_TOKEN}"`, '"${FB_VERIFY_TOKEN}"'));
    const unset = await cli(["check"], dir.path, {});
    expect(unset.code).toBe(1);
    expect(unset.io.stdout.join("\n")).toContain("error: endpoints[0].verify_token: environment variable FB_VERIFY_TOKEN is not set");
    expect((await cli(["check"], dir.path, { FB_VERIFY_TOKEN: "from-env" })).code).toBe(0);
  });

  test("invalid TOML", async () => {
    const { code, io } = await cli(["check"], workdir("[server\nport = 1\n").path);
    expect(code).toBe(1);
    expect(io.stdout.join("\n")).toContain("error: not valid TOML");
  });

  test("no settings file: exit 1 saying how to provide one", async () => {
    const { code, io } = await cli(["check"], workdir().path);
    expect(code).toBe(1);
    expect(io.text()).toContain("no settings file");
    expect(io.text()).toContain("--config");
  });

  test("a --config file that does not exist: exit 1", async () => {
    const { code, io } = await cli(["check", "--config", "nope.toml"], workdir().path);
    expect(code).toBe(1);
    expect(io.text()).toContain("settings file not found");
  });

  test("secrets are never printed", async () => {
    const dir = workdir(settingsToml().replace("[server]", "[server]\nprot = 1"));
    const { io } = await cli(["check"], dir.path);
    for (const secret of [VERIFY_TOKEN, APP_SECRET, PAGE_TOKEN]) expect(io.text()).not.toContain(secret);
  });
});

describe("migrate", () => {
  test("applies the migrations, then none on a second run", async () => {
    const dir = workdir(settingsToml({ storageUrl: "file:state/bot.db" }));
    const first = await cli(["migrate"], dir.path);
    expect(first.io.stderr).toEqual([]);
    expect(first.code).toBe(0);
    expect(first.io.stdout[0]).toMatch(new RegExp(`^${dir.join("state/bot.db")}: applied [1-9]\\d* migrations? \\(\\d+ in total\\)$`));
    expect(existsSync(dir.join("state/bot.db"))).toBe(true);

    const second = await cli(["migrate"], dir.path);
    expect(second.code).toBe(0);
    expect(second.io.stdout[0]).toMatch(/: applied 0 migrations \(\d+ in total\)$/);
  });

  test("invalid settings: exit 1, nothing created", async () => {
    const dir = workdir(`[storage]\nurl = "file:state/bot.db"\n[log]\nlevel = "loud"\n`);
    const { code, io } = await cli(["migrate"], dir.path);
    expect(code).toBe(1);
    expect(io.stderr.join("\n")).toContain("log.level");
    expect(existsSync(dir.join("state"))).toBe(false);
  });

  test("a database that cannot be opened: exit 2 with a one-line reason", async () => {
    const dir = workdir();
    dir.write("blocker", "a file where a folder should be");
    dir.write("messenger-endpoint.toml", settingsToml({ storageUrl: "file:blocker/bot.db" }));
    const { code, io } = await cli(["migrate"], dir.path);
    expect(code).toBe(2);
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toStartWith("messenger-endpoint: ");
  });
});

/** Runs `src/main.ts serve` as a child until its `listening` log line, then stops it with SIGTERM. */
async function serveOnce(dir: { path: string }, args: string[] = []): Promise<{ code: number; records: Record<string, unknown>[]; stderr: string }> {
  const proc = Bun.spawn([process.execPath, join(REPO, "src", "main.ts"), "serve", "--host", "127.0.0.1", "--port", "0", ...args], {
    cwd: dir.path,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir.path },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const stderr = new Response(proc.stderr).text();
  const records: Record<string, unknown>[] = [];
  const decoder = new TextDecoder();
  let buffer = "";
  let stopped = false;
  for await (const chunk of proc.stdout) {
    buffer += decoder.decode(chunk, { stream: true });
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) records.push(JSON.parse(line) as Record<string, unknown>);
    const listening = records.find((r) => r.msg === "listening");
    if (listening && !stopped) {
      // A request answered: serve has finished starting and handles SIGTERM.
      expect((await fetch(`${String(listening.url)}/healthz`)).status).toBe(200);
      proc.kill("SIGTERM");
      stopped = true;
    }
  }
  const code = await proc.exited;
  if (code !== 0) throw new Error(`serve exited with ${code}:\n${await stderr}\n${records.map((r) => JSON.stringify(r)).join("\n")}`);
  return { code, records, stderr: await stderr };
}

/** A migrated database at data/bot.db, then changed by `sql` (as a newer or diverged binary would have). */
async function databaseWith(sql: string) {
  const dir = workdir(settingsToml({ storageUrl: "file:data/bot.db" }));
  expect((await cli(["migrate"], dir.path)).code).toBe(0);
  const file = dir.join("data/bot.db");
  const client = createClient({ url: `file:${file}` });
  await client.executeMultiple(sql);
  client.close();
  return { dir, file };
}

async function rows(file: string, sql: string): Promise<unknown[][]> {
  const client = createClient({ url: `file:${file}` });
  try {
    return (await client.execute(sql)).rows.map((r) => Array.from(r as unknown as unknown[]));
  } finally {
    client.close();
  }
}

describe("a database this binary cannot use", () => {
  const known = knownMigrations();
  const newer = `INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('${"f".repeat(64)}', ${known.at(-1)!.when + 1000}),
    ('${"e".repeat(64)}', ${known.at(-1)!.when + 2000});
    UPDATE meta SET value = '0.3.0' WHERE key = '${APP_VERSION_KEY}';`;

  test("newer: migrate and serve exit 2 naming both versions; nothing is applied", async () => {
    const { dir, file } = await databaseWith(newer);
    const expected =
      `messenger-endpoint: the database ${file} has schema ${known.length + 2} (written by messenger-endpoint 0.3.0); ` +
      `this binary ${VERSION} knows schema ${known.length}: run the newer binary, or restore a backup taken with ${VERSION}`;
    for (const command of ["migrate", "serve"]) {
      const { code, io } = await cli([command], dir.path);
      expect(code).toBe(2);
      expect(io.stderr).toEqual([expected]);
    }
    expect(await rows(file, "SELECT count(*) FROM __drizzle_migrations")).toEqual([[known.length + 2]]);
    expect(await rows(file, `SELECT value FROM meta WHERE key = '${APP_VERSION_KEY}'`)).toEqual([["0.3.0"]]);
  });

  test("diverged (a migration this binary does not know, older than its newest): exit 2", async () => {
    const { dir, file } = await databaseWith(`INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('${"f".repeat(64)}', ${known[1]!.when + 1});`);
    const { code, io } = await cli(["migrate"], dir.path);
    expect(code).toBe(2);
    expect(io.stderr).toEqual([
      `messenger-endpoint: the database ${file} has schema ${known.length + 1} (written by messenger-endpoint ${VERSION}), which is not this binary's: ` +
        `it has a migration of ${new Date(known[1]!.when + 1).toISOString().slice(0, 16).replace("T", " ")} UTC that this binary does not know; ` +
        `run the binary that wrote it, or restore a backup taken with ${VERSION}`,
    ]);
  });

  test("diverged (one of its migrations was changed): exit 2", async () => {
    const { dir } = await databaseWith(`UPDATE __drizzle_migrations SET hash = '${"0".repeat(64)}' WHERE created_at = ${known[0]!.when};`);
    const { code, io } = await cli(["migrate"], dir.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain(`its migration ${known[0]!.tag} differs from this binary's`);
  });
});

describe("another program's database", () => {
  async function foreignSite() {
    const dir = workdir(settingsToml({ storageUrl: "file:data/theirs.db" }));
    dir.sub("data");
    const file = dir.join("data/theirs.db");
    const client = createClient({ url: `file:${file}` });
    await client.executeMultiple("CREATE TABLE customers (id INTEGER PRIMARY KEY); CREATE TABLE orders (id INTEGER PRIMARY KEY);");
    client.close();
    return { dir, file };
  }

  test("migrate and serve refuse it (exit 2, its tables named) and leave it as it was; --adopt uses it", async () => {
    const { dir, file } = await foreignSite();
    const before = readFileSync(file);
    for (const command of ["migrate", "serve"]) {
      const { code, io } = await cli([command], dir.path);
      expect(code).toBe(2);
      expect(io.stderr).toEqual([
        `messenger-endpoint: the database ${file} is another program's SQLite database (tables: customers, orders): ` +
          "point storage.url at a new database, or pass --adopt to add messenger-endpoint's tables to this one",
      ]);
    }
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(existsSync(`${file}-wal`)).toBe(false);

    const adopted = await cli(["migrate", "--adopt"], dir.path);
    expect(adopted.io.stderr).toEqual([]);
    expect(adopted.code).toBe(0);
    expect(adopted.io.stdout[0]).toContain(`applied ${knownMigrations().length} migrations`);
    expect((await rows(file, "SELECT name FROM sqlite_schema WHERE name = 'customers'")).length).toBe(1);
    // Marked as ours now: no --adopt needed any more.
    expect((await cli(["migrate"], dir.path)).code).toBe(0);
  });

  test("serve --adopt starts on it", async () => {
    const { dir, file } = await foreignSite();
    const served = await serveOnce(dir, ["--adopt"]);
    expect(served.code).toBe(0);
    expect(served.records.some((r) => r.msg === "listening")).toBe(true);
    expect(await rows(file, "PRAGMA application_id")).toEqual([[APPLICATION_ID]]);
  });

  test("a file that is not SQLite: exit 2 with a one-line reason", async () => {
    const dir = workdir(settingsToml({ storageUrl: "file:notes.txt" }));
    dir.write("notes.txt", "shopping list\n".repeat(20));
    const { code, io } = await cli(["migrate", "--adopt"], dir.path);
    expect(code).toBe(2);
    expect(io.stderr).toEqual([
      `messenger-endpoint: ${dir.join("notes.txt")} is not a SQLite database (or it is encrypted or damaged): point storage.url at a messenger-endpoint database or at a new file`,
    ]);
  });

  test("--adopt is only for serve and migrate", async () => {
    const { code, io } = await cli(["backup", "out.db", "--adopt"], workdir(settingsToml()).path);
    expect(code).toBe(1);
    expect(io.stderr[0]).toStartWith("messenger-endpoint: --adopt is for serve and migrate, not backup\n");
  });
});

describe("a settings file others can read", () => {
  const warning = (file: string, readers: string, mode: string) =>
    `warning: the settings file ${file} holds secrets and ${readers} can read it (mode ${mode}): chmod 600 ${file}, or give the secrets through *_file keys or \${ENV} variables`;

  test("check warns when group or others can read a file that holds secrets literally", async () => {
    const dir = workdir(settingsToml());
    const file = dir.join("messenger-endpoint.toml");
    chmodSync(file, 0o644);
    const open = await cli(["check"], dir.path);
    expect(open.code).toBe(0);
    expect(open.io.stdout).toContain(warning(file, "every user of this machine", "0644"));
    chmodSync(file, 0o640);
    expect((await cli(["check"], dir.path)).io.stdout).toContain(warning(file, "its group", "0640"));
  });

  test("no warning at 0600, nor for a readable file whose secrets come from the environment", async () => {
    const dir = workdir(settingsToml());
    const at600 = await cli(["check"], dir.path);
    expect(at600.io.stdout.filter((l) => l.startsWith("warning:"))).toEqual([]);

    const env = { VT: VERIFY_TOKEN, AS: APP_SECRET, PT: PAGE_TOKEN, PT2: PAGE_TOKEN_2 };
    const fromEnv = workdir(
      settingsToml()
        .replace(`"${VERIFY_TOKEN}"`, '"${VT}"')
        .replace(`"${APP_SECRET}"`, '"${AS}"')
        .replace(`"${PAGE_TOKEN}"`, '"${PT}"')
        .replace(`"${PAGE_TOKEN_2}"`, '"${PT2}"'),
    );
    const file = fromEnv.join("messenger-endpoint.toml");
    for (const secret of Object.values(env)) expect(readFileSync(file, "utf8")).not.toContain(secret);
    chmodSync(file, 0o644);
    const readable = await cli(["check"], fromEnv.path, env);
    expect(readable.code).toBe(0);
    expect(readable.io.stdout.filter((l) => l.startsWith("warning:"))).toEqual([]);
  });

  test("serve logs the warning at start", async () => {
    const dir = workdir(settingsToml({ storageUrl: "file:data/bot.db" }));
    const file = dir.join("messenger-endpoint.toml");
    chmodSync(file, 0o604);
    const served = await serveOnce(dir);
    expect(served.code).toBe(0);
    const warnings = served.records.filter((r) => r.level === "warn").map((r) => r.msg);
    expect(warnings).toContain(warning(file, "every user of this machine", "0604").slice("warning: ".length));
    for (const secret of [VERIFY_TOKEN, APP_SECRET, PAGE_TOKEN]) expect(JSON.stringify(served.records)).not.toContain(secret);
  });
});
