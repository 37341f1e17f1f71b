import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { VERSION } from "../../src/version.ts";
import { USAGE } from "../../src/cli/usage.ts";
import { cli, settingsToml, tempDir, VERIFY_TOKEN, APP_SECRET, PAGE_TOKEN } from "../helpers/index.ts";

const root = tempDir("cli");
afterAll(() => root.remove());
let n = 0;
/** A fresh working folder, optionally with ./messenger-endpoint.toml. */
function workdir(settings?: string) {
  const dir = root.sub(`w${++n}`);
  if (settings !== undefined) dir.write("messenger-endpoint.toml", settings);
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
    for (const command of ["serve", "check", "migrate", "backup", "restore", "version"]) {
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
    const valid = workdir(settingsToml().replace('verify_token = ', 'verfy_token = "x"\nverify_token = '));
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
