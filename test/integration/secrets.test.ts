/**
 * Secrets never appear in output, logs or stored errors, whatever their type or where they sit in
 * a URL: the command line's failures with a remote storage URL, `check` with a secret written as a
 * number, and a flow whose URL carries a password and a key.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { REPO, cli, settingsToml, tempDir, APP_SECRET, PAGE_TOKEN, VERIFY_TOKEN } from "../helpers/index.ts";
import { rows, startConversation, until, userText, type Conversation } from "../helpers/conversation.ts";

const root = tempDir("secrets");
afterAll(() => root.remove());
let n = 0;
const workdir = (settings: string) => {
  const dir = root.sub(`w${++n}`);
  dir.write("messenger-endpoint.toml", settings);
  return dir;
};

/** A libSQL server nobody listens on (port 9, discard), reached with a password and a token. */
const REMOTE = "libsql://user:s3cretpass@127.0.0.1:9/db?authToken=tok_abcdef123";
const REMOTE_SECRETS = ["s3cretpass", "tok_abcdef123", "tok_other_987654"];

describe("a remote storage.url with credentials", () => {
  const settings = settingsToml({ storageUrl: REMOTE }).replace("[storage]", '[storage]\nauth_token = "tok_other_987654"');

  test("serve, for real: the unreachable server is named without them, on stdout and stderr", async () => {
    const dir = workdir(settings);
    const proc = Bun.spawn([process.execPath, join(REPO, "src/main.ts"), "serve", "--config", dir.join("messenger-endpoint.toml")], {
      cwd: dir.path,
      env: { PATH: process.env.PATH ?? "" },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(2);
    expect(stderr).toContain("messenger-endpoint: cannot open the database libsql://127.0.0.1:9/db?authToken=…: ");
    for (const secret of REMOTE_SECRETS) {
      expect(stdout).not.toContain(secret);
      expect(stderr).not.toContain(secret);
    }
  });

  test("migrate and backup: the same", async () => {
    const migrate = await cli(["migrate"], workdir(settings).path);
    expect(migrate.code).toBe(2);
    expect(migrate.io.stderr).toEqual([expect.stringMatching(/^messenger-endpoint: cannot open the database libsql:\/\/127\.0\.0\.1:9\/db\?authToken=…: /)]);
    const backup = await cli(["backup", "out.db"], workdir(settings).path);
    expect(backup.code).toBe(1);
    expect(backup.io.stderr).toEqual([
      "messenger-endpoint: storage.url libsql://127.0.0.1:9/db?authToken=… is not a local file: back up a libSQL server with its own tools (sqld / Turso)",
    ]);
    for (const { io } of [migrate, backup]) for (const secret of REMOTE_SECRETS) expect(io.text()).not.toContain(secret);
  });

  test("a server whose error quotes the token: the driver's text is printed without it", async () => {
    // A stand-in for sqld answering every pipeline with an error that quotes the Authorization header.
    const sqld = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request) =>
        Response.json({
          baton: null,
          base_url: null,
          results: [
            { type: "error", error: { message: `token rejected: ${request.headers.get("authorization")}`, code: "AUTH_FAILED" } },
            { type: "ok", response: { type: "close" } },
          ],
        }),
    });
    try {
      for (const [url, token] of [
        [`http://user:s3cretpass@127.0.0.1:${sqld.port}/db?authToken=tok_abcdef123`, null],
        [`http://127.0.0.1:${sqld.port}/db`, "tok_other_987654"],
      ] as const) {
        const text = settingsToml({ storageUrl: url }).replace("[storage]", token ? `[storage]\nauth_token = "${token}"` : "[storage]");
        const { code, io } = await cli(["migrate"], workdir(text).path);
        expect(code).toBe(2);
        expect(io.stderr).toEqual([
          `messenger-endpoint: cannot open the database ${url.replace("user:s3cretpass@", "").replace("tok_abcdef123", "…")}: AUTH_FAILED: token rejected: Bearer [redacted]`,
        ]);
        for (const secret of REMOTE_SECRETS) expect(io.text()).not.toContain(secret);
      }
    } finally {
      sqld.stop(true);
    }
  });
});

describe("check", () => {
  test("a secret of the wrong type is described by its type, never echoed", async () => {
    const settings = settingsToml({
      extra:
        '[admin]\napi_keys = [8675309123456789]\n[flows.agent]\nkind = "http"\nurl = "http://127.0.0.1:5005/a"\nheaders = { X-Functions-Key = 4242424242 }',
    })
      .replace(`verify_token = "${VERIFY_TOKEN}"`, "verify_token = 31415926535")
      .replace(`app_secret = "${APP_SECRET}"`, "app_secret = 2718281828")
      .replace(`access_token = "${PAGE_TOKEN}"`, "access_token = 1618033988")
      .replace('url = "file:data/messenger-endpoint.db"', "url = 5772156649\nauth_token = 1414213562")
      .replace("[server]", '[graph]\nurl = "ftp://graph:gr4phpass@graph.example/?token=t0k3nvalue"\n[server]');
    const { code, io } = await cli(["check"], workdir(settings).path);
    expect(code).toBe(1);
    expect(io.stdout).toEqual(
      expect.arrayContaining([
        "error: endpoints[0].verify_token: expected a string, got a number: write it in quotes",
        "error: endpoints[0].app_secret: expected a string, got a number: write it in quotes",
        "error: endpoints[0].pages[0].access_token: expected a string, got a number: write it in quotes",
        "error: admin.api_keys[0]: expected a string, got a number: write it in quotes",
        'error: flows.agent.headers["X-Functions-Key"]: expected a string, got a number: write it in quotes',
        "error: storage.auth_token: expected a string, got a number: write it in quotes",
        'error: graph.url: "ftp://graph.example/?token=…" does not match the expected form (an http:// or https:// URL)',
      ]),
    );
    for (const secret of ["31415926535", "2718281828", "1618033988", "8675309123456789", "4242424242", "1414213562", "gr4phpass", "t0k3nvalue"]) {
      expect(io.text()).not.toContain(secret);
    }
    // Not a secret: still echoed, which helps.
    expect(io.stdout).toContain("error: storage.url: expected a string, got 5772156649: write it in quotes");
  });

  test("a secret given as a string where a list belongs is not echoed either", async () => {
    const { io } = await cli(["check"], workdir(settingsToml({ extra: '[admin]\napi_keys = "one-key-that-is-long"' })).path);
    expect(io.stdout).toContain("error: admin.api_keys: expected a list, got a string");
    expect(io.text()).not.toContain("one-key-that-is-long");
  });
});

describe("stored errors and log lines", () => {
  const open: Conversation[] = [];
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close();
  });

  test("a flow URL with a password and a key: shown in its display form, in the log and in inbox.last_error", async () => {
    // An agent whose error page quotes the key it was given (Azure Functions' `?code=`).
    const agent = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request) => new Response(`bad code ${new URL(request.url).searchParams.get("code")}`, { status: 500 }),
    });
    try {
      const url = `http://bot:s3cretpass@127.0.0.1:${agent.port}/api/turn?code=AzFuncKey12345&tenant=acme`;
      const c = await startConversation({ flow: `kind = "http"\nurl = "${url}"` });
      open.push(c);
      await c.post([userText("hello")]);
      await until(async () => (await rows(c, "SELECT last_error FROM inbox WHERE last_error IS NOT NULL")).length === 1);
      const [[stored]] = (await rows(c, "SELECT last_error FROM inbox WHERE last_error IS NOT NULL")) as unknown as [[string]];
      expect(stored).toBe(`the agent at http://127.0.0.1:${agent.port}/api/turn?code=…&tenant=… answered HTTP 500: bad code [redacted]`);
      const logged = c.logs.lines.filter((l) => l.includes("answered HTTP 500"));
      expect(logged).toHaveLength(1);
      for (const secret of ["s3cretpass", "AzFuncKey12345"]) {
        expect(stored).not.toContain(secret);
        expect(c.logs.lines.join("\n")).not.toContain(secret);
      }
    } finally {
      agent.stop(true);
    }
  });

  test("a flow's error quoting a secret of the settings or a URL's credentials is stored without them", async () => {
    const c = await startConversation({
      files: {
        "flows/leaky.ts": `export default async () => { throw new Error("Graph said no to ${PAGE_TOKEN} at https://u:hunter2pass@x.example/?key=k_live_4242"); };`,
      },
      flow: 'kind = "script"\nmodule = "flows/leaky.ts"',
    });
    open.push(c);
    await c.post([userText("hello")]);
    await until(async () => (await rows(c, "SELECT last_error FROM inbox WHERE last_error IS NOT NULL")).length === 1);
    const [[stored]] = (await rows(c, "SELECT last_error FROM inbox WHERE last_error IS NOT NULL")) as unknown as [[string]];
    expect(stored).toEndWith("threw: Graph said no to [redacted] at https://[redacted]@x.example/?key=[redacted]");
    for (const secret of [PAGE_TOKEN, "hunter2pass", "k_live_4242"]) expect(stored).not.toContain(secret);
  });
});
