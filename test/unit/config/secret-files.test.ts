import { afterAll, describe, expect, test } from "bun:test";
import { loadSettingsFile } from "../../../src/config/load.ts";
import { SettingsError, formatProblem } from "../../../src/config/problems.ts";
import { tempDir } from "../../helpers/index.ts";

// Each test writes its settings into its own folder, and refers to secrets relative to it.
const root = tempDir("secret-files");
afterAll(() => root.remove());
let n = 0;

function load(settings: string, files: Record<string, string> = {}) {
  const dir = root.sub(`case-${++n}`);
  for (const [name, content] of Object.entries(files)) dir.write(name, content);
  const file = dir.write("conf/messenger-endpoint.toml", settings);
  return { dir, run: () => loadSettingsFile(file, {}) };
}

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof SettingsError) return error.problems.map(formatProblem);
    throw error;
  }
  throw new Error("expected the settings to be rejected");
}

const flow = `[flows.support]\nkind = "http"\nurl = "http://127.0.0.1:5005/agent"\n`;

describe("<secret>_file", () => {
  test("app_secret_file, verify_token_file and access_token_file, relative to the settings file's folder", () => {
    const { run } = load(
      `${flow}[[endpoints]]\nid = "support"\nflow = "support"\nverify_token_file = "secrets/verify"\napp_secret_file = "secrets/app"\n` +
        `pages = [ { id = "104857600012345", access_token_file = "../page-token" } ]\n`,
      {
        "conf/secrets/verify": "verify-from-file\n",
        "conf/secrets/app": "app-secret-from-file",
        "page-token": "EAAGfromfile\r\n",
      },
    );
    const config = run();
    const e = config.endpoints[0]!;
    expect(e.verify_token).toBe("verify-from-file");
    expect(e.app_secret).toBe("app-secret-from-file");
    expect(e.pages[0]!.access_token).toBe("EAAGfromfile");
    expect(config.secrets).toEqual(expect.arrayContaining(["verify-from-file", "app-secret-from-file", "EAAGfromfile"]));
    // The *_file keys are consumed, not reported as unknown.
    expect(config.warnings).toEqual([]);
  });

  test("an absolute path works too", () => {
    const secretFile = root.write(`abs-${n}-secret`, "absolute-app-secret\n");
    const { run } = load(
      `${flow}[[endpoints]]\nid = "s"\nflow = "support"\nverify_token = "vt-abcdef"\napp_secret_file = "${secretFile}"\n` +
        `pages = [ { id = "1", access_token = "t" } ]\n`,
    );
    expect(run().endpoints[0]!.app_secret).toBe("absolute-app-secret");
  });

  test("api_key_file of an llm flow", () => {
    const { run } = load(`[flows.assistant]\nkind = "llm"\nurl = "http://127.0.0.1:11434/v1"\nmodel = "llama3.1"\napi_key_file = "llm.key"\n`, {
      "conf/llm.key": "sk-llm-key-0001\n",
    });
    const config = run();
    expect(config.flows.assistant!.api_key).toBe("sk-llm-key-0001");
    expect(config.secrets).toContain("sk-llm-key-0001");
  });

  test("api_keys_file holds one key per line; blank lines and # comments are skipped", () => {
    const { run } = load(`[admin]\napi_keys_file = "admin-keys"\n`, {
      "conf/admin-keys": "# operators\nadmin-key-aaaaaaaaaaaa\n\n  admin-key-bbbbbbbbbbbb  \r\n# old: admin-key-cccccccccccc\n",
    });
    const config = run();
    expect(config.admin.api_keys).toEqual(["admin-key-aaaaaaaaaaaa", "admin-key-bbbbbbbbbbbb"]);
    expect(config.secrets).toEqual(expect.arrayContaining(["admin-key-aaaaaaaaaaaa", "admin-key-bbbbbbbbbbbb"]));
  });

  test("keys read from api_keys_file are still checked", () => {
    const { run } = load(`[admin]\napi_keys_file = "admin-keys"\n`, { "conf/admin-keys": "short\n" });
    expect(problemsOf(run)).toEqual(["admin.api_keys[0]: must be at least 16 characters long"]);
  });

  test("auth_token_file for a libSQL server", () => {
    const { run } = load(`[storage]\nurl = "libsql://db.example.test"\nauth_token_file = "db-token"\n`, { "conf/db-token": "libsql-token-xyz\n" });
    const config = run();
    expect(config.storage.auth_token).toBe("libsql-token-xyz");
    expect(config.secrets).toContain("libsql-token-xyz");
  });

  test("only one trailing newline is removed; inner whitespace is kept", () => {
    const { run } = load(`[storage]\nurl = "libsql://db.example.test"\nauth_token_file = "db-token"\n`, { "conf/db-token": "a b\n\n" });
    expect(run().storage.auth_token).toBe("a b\n");
  });

  test("setting both the key and its _file is an error", () => {
    const { run } = load(
      `${flow}[[endpoints]]\nid = "s"\nflow = "support"\nverify_token = "vt-abcdef"\napp_secret = "inline"\napp_secret_file = "app"\n` +
        `pages = [ { id = "1", access_token = "t", access_token_file = "tok" } ]\n`,
      { "conf/app": "x", "conf/tok": "y" },
    );
    const problems = problemsOf(run);
    expect(problems).toContain("endpoints[0].app_secret_file: set either app_secret or app_secret_file, not both");
    expect(problems).toContain("endpoints[0].pages[0].access_token_file: set either access_token or access_token_file, not both");
  });

  test("a file that cannot be read is an error naming it, at its key path", () => {
    const { run, dir } = load(
      `${flow}[[endpoints]]\nid = "s"\nflow = "support"\nverify_token_file = "missing-token"\napp_secret_file = "a-folder"\n` +
        `pages = [ { id = "1", access_token = "t" } ]\n`,
      { "conf/a-folder/keep": "" },
    );
    const problems = problemsOf(run);
    expect(problems).toContain(`endpoints[0].verify_token_file: cannot read ${dir.join("conf/missing-token")}: ENOENT`);
    expect(problems).toContain(`endpoints[0].app_secret_file: cannot read ${dir.join("conf/a-folder")}: EISDIR`);
  });

  test("an empty secret file is an error", () => {
    const { run, dir } = load(`[storage]\nurl = "libsql://db.example.test"\nauth_token_file = "empty"\n`, { "conf/empty": "\n" });
    expect(problemsOf(run)).toContain(`storage.auth_token_file: ${dir.join("conf/empty")} is empty`);
  });

  test("the _file value must be a path", () => {
    const { run } = load(`[storage]\nurl = "libsql://db.example.test"\nauth_token_file = 5\n`);
    expect(problemsOf(run)).toContain("storage.auth_token_file: expected the path of a file holding the secret");
  });

  test("_file of a key that is not a secret is an unknown key", () => {
    const { run } = load(`[server]\nhost_file = "h"\n`);
    expect(run().warnings.map((w) => w.path)).toEqual(["server.host_file"]);
  });

  test("${ENV} inside a _file path is interpolated", () => {
    const dir = root.sub(`case-${++n}`);
    dir.write("conf/prod/app", "secret-from-env-path");
    const file = dir.write(
      "conf/messenger-endpoint.toml",
      `${flow}[[endpoints]]\nid = "s"\nflow = "support"\nverify_token = "vt-abcdef"\napp_secret_file = "\${STAGE}/app"\npages = [ { id = "1", access_token = "t" } ]\n`,
    );
    expect(loadSettingsFile(file, { STAGE: "prod" }).endpoints[0]!.app_secret).toBe("secret-from-env-path");
  });
});

describe("config.secrets", () => {
  test("holds every secret value and no ordinary value", () => {
    const { run } = load(
      `[admin]\napi_keys = ["admin-key-0123456789"]\n[storage]\nurl = "libsql://db.example.test"\nauth_token = "db-auth-token"\n` +
        `[flows.agent]\nkind = "http"\nurl = "http://127.0.0.1:5005/agent"\nheaders = { Authorization = "Bearer agent-bearer-token", X-Trace = "trace-header-value" }\n` +
        `[flows.llm]\nkind = "llm"\nurl = "http://127.0.0.1:11434/v1"\nmodel = "m"\napi_key = "sk-llm-key"\n` +
        `[[endpoints]]\nid = "support"\nflow = "agent"\nverify_token = "verify-token-1"\napp_id = "1234567890"\napp_secret = "app-secret-1"\n` +
        `pages = [ { id = "104857600012345", access_token = "EAAGpage1" }, { id = "104857600067890", access_token = "EAAGpage2" } ]\n`,
    );
    const secrets = run().secrets;
    expect(secrets).toEqual(
      expect.arrayContaining([
        "admin-key-0123456789",
        "db-auth-token",
        "Bearer agent-bearer-token",
        "agent-bearer-token",
        "sk-llm-key",
        "verify-token-1",
        "app-secret-1",
        "EAAGpage1",
        "EAAGpage2",
      ]),
    );
    for (const ordinary of ["1234567890", "104857600012345", "support", "trace-header-value", "http://127.0.0.1:5005/agent"]) {
      expect(secrets).not.toContain(ordinary);
    }
  });
});
