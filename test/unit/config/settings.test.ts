import { afterAll, describe, expect, test } from "bun:test";
import { parseSettings, resolveSettings } from "../../../src/config/load.ts";
import { absoluteStorageUrl } from "../../../src/config/paths.ts";
import { SettingsError } from "../../../src/config/problems.ts";
import { configFromToml, rejectedSettings, settingsToml, tempDir } from "../../helpers/index.ts";

const dir = tempDir("settings");
afterAll(() => dir.remove());

const MINIMAL = `
[flows.support]
kind = "http"
url = "http://127.0.0.1:5005/agent"

[[endpoints]]
id = "support"
flow = "support"
verify_token = "verify-me-please"
pages = [ { id = "104857600012345", access_token = "EAAGtoken0001" } ]
`;

describe("defaults", () => {
  const config = configFromToml(MINIMAL, { dir: dir.path });

  test("server, graph, log, metrics, simulator, admin", () => {
    expect(config.server).toEqual({ host: "127.0.0.1", port: 8080, max_body_bytes: 1_048_576, warm_up_turns: 0 });
    expect(config.graph.url).toBe("https://graph.facebook.com");
    expect(config.graph.version).toMatch(/^v\d+\.\d+$/);
    expect(config.graph.timeout_ms).toBe(10_000);
    expect(config.log).toEqual({ level: "info", format: "json" });
    expect(config.metrics.enabled).toBe(true);
    expect(config.simulator.enabled).toBe(false);
    expect(config.admin.api_keys).toEqual([]);
  });

  test("endpoint sections", () => {
    const e = config.endpoints[0]!;
    expect(e.enabled).toBe(true);
    expect(e.locale).toBe("en");
    expect(e.app_secret).toBeUndefined();
    expect(e.profiles).toEqual({ request_profile_data: true, update_contact_profiles: true, merge_contact_profiles: false });
    expect(e.messenger).toEqual({ typing_indicators: true, message_delay_ms: 0, mark_seen: false });
    expect(e.session.expiration_minutes).toBe(30);
    expect(e.data_protection).toEqual({
      contact_profiles: true,
      collect_conversations: true,
      collect_analytics: true,
      mask_logging: false,
      mask_analytics: false,
      retention_days: 30,
      sanitize_input: false,
      hide_external_references: false,
    });
    expect(e.transformers).toEqual({
      abort_on_error: false,
      input: false,
      output: false,
      execution_finished: false,
      pre_nlu: false,
      post_nlu: false,
      inject: false,
      notify: false,
    });
  });

  test("storage defaults to a file in data/ under the settings folder", () => {
    expect(config.storage.url).toBe(`file:${dir.path}/data/messenger-endpoint.db`);
  });

  test("bookkeeping fields", () => {
    expect(config.file).toBeNull();
    expect(config.dir).toBe(dir.path);
    expect(config.demo).toBe(false);
    expect(config.warnings).toEqual([]);
  });

  test("an empty file is valid and has no endpoints", () => {
    const empty = parseSettings("", { dir: dir.path, env: {} });
    expect(empty.endpoints).toEqual([]);
    expect(empty.flows).toEqual({});
    expect(empty.server.port).toBe(8080);
  });

  test("values that are given win over defaults", () => {
    const c = configFromToml(`[server]\nhost = "0.0.0.0"\nport = 9000\n[log]\nlevel = "warn"\nformat = "pretty"\n${MINIMAL}`, {
      dir: dir.path,
    });
    expect(c.server.host).toBe("0.0.0.0");
    expect(c.server.port).toBe(9000);
    expect(c.log).toEqual({ level: "warn", format: "pretty" });
  });

  test("the test hub's settings are valid", () => {
    const c = configFromToml(settingsToml(), { dir: dir.path });
    expect(c.endpoints.map((e) => e.id)).toEqual(["support"]);
    expect(c.endpoints[0]!.pages).toHaveLength(2);
  });
});

describe("schema problems carry their key path", () => {
  const problemsOf = (text: string) => rejectedSettings(text, { dir: dir.path }).problems;

  test("a missing key inside a list inside a list", () => {
    const text = MINIMAL.replace(
      'pages = [ { id = "104857600012345", access_token = "EAAGtoken0001" } ]',
      'pages = [ { id = "104857600012345", access_token = "EAAGtoken0001" }, { id = "104857600067890" } ]',
    );
    expect(problemsOf(text)).toEqual(["endpoints[0].pages[1].access_token: missing"]);
  });

  test("missing required endpoint keys", () => {
    const problems = problemsOf(`[[endpoints]]\npages = [ { id = "1", access_token = "t" } ]\n`);
    expect(problems).toContain("endpoints[0].id: missing");
    expect(problems).toContain("endpoints[0].flow: missing");
    expect(problems).toContain("endpoints[0].verify_token: missing");
  });

  test("a missing kind on a flow", () => {
    expect(problemsOf(`[flows.x]\nurl = "http://a"\n`)).toContain("flows.x.kind: missing");
  });

  test("wrong types", () => {
    const problems = problemsOf(`[server]\nport = "80x"\n[metrics]\nenabled = "yes"\n[admin]\napi_keys = "one-key-that-is-long"\n[graph]\ntimeout_ms = 1.5\n`);
    expect(problems).toContain('server.port: expected a whole number, got "80x"');
    expect(problems).toContain('metrics.enabled: expected true or false, got "yes"');
    // A secret's value is never echoed, whatever its type: test/integration/secrets.test.ts.
    expect(problems).toContain("admin.api_keys: expected a list, got a string");
    expect(problems).toContain("graph.timeout_ms: expected a whole number, got 1.5");
  });

  test("a table where a value was expected, and a value where a table was expected", () => {
    const problems = problemsOf(`server = 5\n[storage.url]\nx = 1\n`);
    expect(problems).toContain("server: expected a table, got 5");
    expect(problems).toContain("storage.url: expected a string, got a table");
  });

  test("an enum value", () => {
    expect(problemsOf(`[log]\nlevel = "verbose"\n`)).toEqual(['log.level: expected one of "debug", "info", "warn", "error", got "verbose"']);
    expect(problemsOf(`[flows.x]\nkind = "grpc"\n`)).toEqual(['flows.x.kind: expected one of "http", "script", "llm", got "grpc"']);
  });

  test("[endpoints.handover]: defaults, fractions of minutes, and its rules", () => {
    expect(configFromToml(MINIMAL, { dir: dir.path }).endpoints[0]!.handover).toEqual({
      target: "page_inbox",
      timeout_minutes: 60,
      pause_on_human_reply: true,
      pause_minutes: 30,
      honour_requests: true,
    });
    const custom = configFromToml(`${MINIMAL}[endpoints.handover]\ntarget = "555000111"\ntimeout_minutes = 0.5\npause_minutes = 0\n`, { dir: dir.path });
    expect(custom.endpoints[0]!.handover).toMatchObject({ target: "555000111", timeout_minutes: 0.5, pause_minutes: 0 });
    expect(custom.warnings).toEqual([]);
    const problems = problemsOf(`${MINIMAL}[endpoints.handover]\ntarget = "inbox"\ntimeout_minutes = -1\npause_minutes = 20000\n`);
    expect(problems).toContain('endpoints[0].handover.target: "inbox" does not match the expected form ("page_inbox" or an app id, digits only)');
    expect(problems).toContain("endpoints[0].handover.timeout_minutes: must be at least 0, got -1");
    expect(problems).toContain("endpoints[0].handover.pause_minutes: must be at most 10080, got 20000");
    const misspelt = configFromToml(`${MINIMAL}[endpoints.handover]\ntimeout_minute = 5\n`, { dir: dir.path });
    expect(misspelt.warnings).toEqual([{ path: "endpoints[0].handover.timeout_minute", message: 'unknown key, ignored (did you mean "timeout_minutes"?)' }]);
  });

  test("patterns", () => {
    const problems = problemsOf(
      MINIMAL.replace('id = "104857600012345"', 'id = "page-one"').replace('id = "support"', 'id = "bad id!"') +
        `\n[graph]\nversion = "23"\nurl = "graph.facebook.com"\n[server]\npublic_url = "bots.example.com"\n`,
    );
    expect(problems).toContain('endpoints[0].pages[0].id: "page-one" does not match the expected form (digits only)');
    expect(problems.some((p) => p.startsWith('endpoints[0].id: "bad id!" does not match'))).toBe(true);
    expect(problems).toContain('graph.version: "23" does not match the expected form (a Graph API version such as "v26.0")');
    expect(problems).toContain('graph.url: "graph.facebook.com" does not match the expected form (an http:// or https:// URL)');
    expect(problems).toContain('server.public_url: "bots.example.com" does not match the expected form (an http:// or https:// URL)');
  });

  test("minimum and maximum", () => {
    const problems = problemsOf(`[server]\nmax_body_bytes = 10\nport = 70000\n[admin]\napi_keys = ["short"]\n`);
    expect(problems).toContain("server.max_body_bytes: must be at least 1024, got 10");
    expect(problems).toContain("server.port: must be at most 65535, got 70000");
    expect(problems).toContain("admin.api_keys[0]: must be at least 16 characters long");
  });

  test("the memory settings: storage.cache_mib and server.warm_up_turns", () => {
    const problems = problemsOf(`[server]\nwarm_up_turns = -1\n[storage]\ncache_mib = 0\n`);
    expect(problems).toContain("server.warm_up_turns: must be at least 0, got -1");
    expect(problems).toContain("storage.cache_mib: must be at least 1, got 0");
    // A number in a string is taken (as from a ${VAR}); anything else is not.
    const retyped = problemsOf(`[server]\nwarm_up_turns = "many"\n[storage]\ncache_mib = 16.5\n`);
    expect(retyped.some((p) => p.startsWith("server.warm_up_turns:"))).toBe(true);
    expect(retyped.some((p) => p.startsWith("storage.cache_mib:"))).toBe(true);
  });

  test("an empty list and an empty string", () => {
    const problems = problemsOf(MINIMAL.replace(/pages = .*/, "pages = []").replace('verify_token = "verify-me-please"', 'verify_token = ""'));
    expect(problems).toContain("endpoints[0].pages: needs at least 1 item");
    expect(problems).toContain("endpoints[0].verify_token: must not be empty");
  });

  test("one message per key", () => {
    const problems = problemsOf(`[log]\nlevel = 5\n`);
    expect(problems.filter((p) => p.startsWith("log.level:"))).toHaveLength(1);
  });

  test("every problem is reported at once, not only the first", () => {
    const text = `
[server]
port = "eighty"
max_body_bytes = 10
[log]
level = "verbose"
[graph]
version = "23"
[flows.bad]
kind = "grpc"
[[endpoints]]
id = "support"
flow = "support"
verify_token = "vt-123456"
pages = [ { id = "123", access_token = "tok" }, { id = "abc" } ]
[[endpoints]]
id = "b"
flow = "support"
pages = []
`;
    const { problems } = rejectedSettings(text, { dir: dir.path });
    expect(problems).toEqual(
      expect.arrayContaining([
        'server.port: expected a whole number, got "eighty"',
        "server.max_body_bytes: must be at least 1024, got 10",
        'log.level: expected one of "debug", "info", "warn", "error", got "verbose"',
        'graph.version: "23" does not match the expected form (a Graph API version such as "v26.0")',
        'flows.bad.kind: expected one of "http", "script", "llm", got "grpc"',
        "endpoints[0].pages[1].access_token: missing",
        'endpoints[0].pages[1].id: "abc" does not match the expected form (digits only)',
        "endpoints[1].verify_token: missing",
        "endpoints[1].pages: needs at least 1 item",
      ]),
    );
    expect(problems.length).toBeGreaterThanOrEqual(9);
  });

  test("the error's message lists every problem with the file name", () => {
    try {
      parseSettings(`[server]\nport = "x"\n[log]\nlevel = 1\n`, { file: dir.join("m.toml"), env: {} });
      throw new Error("accepted");
    } catch (error) {
      expect(error).toBeInstanceOf(SettingsError);
      const e = error as SettingsError;
      expect(e.file).toBe(dir.join("m.toml"));
      expect(e.message).toContain(`${dir.join("m.toml")}: 2 problems`);
      expect(e.message).toContain("server.port: ");
      expect(e.message).toContain("log.level: ");
    }
  });

  test("keys that are not identifiers are quoted in the path", () => {
    const problems = problemsOf(`[flows."1st-flow"]\nkind = "http"\n`);
    expect(problems).toContain('flows["1st-flow"].url: missing (required for kind "http")');
  });

  test("a flow name outside [A-Za-z0-9_-] is a problem", () => {
    const problems = problemsOf(`[flows."my flow"]\nkind = "http"\nurl = "http://a"\n`);
    expect(problems.some((p) => p.startsWith('flows["my flow"]'))).toBe(true);
  });
});

describe("invalid TOML", () => {
  const BAD = `[server]\nport = 8080\n\n[log]\nlevel = = "info"\n`;

  test("is one problem for the whole file, with the parser's reason", () => {
    try {
      parseSettings(BAD, { dir: dir.path, env: {} });
      throw new Error("accepted");
    } catch (error) {
      expect(error).toBeInstanceOf(SettingsError);
      const problems = (error as SettingsError).problems;
      expect(problems).toHaveLength(1);
      expect(problems[0]!.path).toBe("");
      expect(problems[0]!.message).toStartWith("not valid TOML");
      expect(problems[0]!.message).toContain("invalid value");
    }
  });

  test("a syntax error never repeats the line, which may hold a secret", () => {
    const { problems } = rejectedSettings(`[[endpoints]]\napp_secret = "supersecretvalue123\n`, { dir: dir.path });
    expect(problems.join("\n")).not.toContain("supersecretvalue123");
  });

  test("a redefined key is invalid TOML", () => {
    const { problems } = rejectedSettings(`[server]\nport = 1\nport = 2\n`, { dir: dir.path });
    expect(problems[0]).toContain("not valid TOML (line 3, column 1)");
    expect(problems[0]).toContain("redefine");
  });

  test("names the line of the TOML text where the error is", () => {
    const { problems } = rejectedSettings(BAD, { dir: dir.path });
    expect(problems[0]).toMatch(/line 5, column 9\b/);
  });

  test("a settings tree that is not a table", () => {
    expect(() => resolveSettings([1, 2], { dir: dir.path, env: {} })).toThrow(SettingsError);
    expect(() => resolveSettings("x", { dir: dir.path, env: {} })).toThrow("the settings must be a TOML table");
  });
});

describe("unknown keys are warnings with a suggestion", () => {
  test("a misspelt key inside an endpoint", () => {
    const text = MINIMAL.replace('verify_token = "verify-me-please"', 'verify_token = "verify-me-please"\nverfy_token = "x"');
    const config = configFromToml(text, { dir: dir.path });
    expect(config.warnings).toEqual([{ path: "endpoints[0].verfy_token", message: 'unknown key, ignored (did you mean "verify_token"?)' }]);
    expect(config.endpoints[0]!.verify_token).toBe("verify-me-please");
  });

  test("misspelt sections and keys at several depths", () => {
    const config = configFromToml(`[sever]\nport = 1\n[server]\nprot = 1\n[flows.support]\nkind = "http"\nurll = "http://a"\nurl = "http://a"\n`, {
      dir: dir.path,
    });
    const warnings = config.warnings.map((w) => `${w.path}: ${w.message}`);
    expect(warnings).toContain('sever: unknown key, ignored (did you mean "server"?)');
    expect(warnings).toContain('server.prot: unknown key, ignored (did you mean "port"?)');
    expect(warnings).toContain('flows.support.urll: unknown key, ignored (did you mean "url"?)');
  });

  test("no suggestion when nothing is close", () => {
    const config = configFromToml(`[server]\ncompletely_unrelated = 1\n`, { dir: dir.path });
    expect(config.warnings).toEqual([{ path: "server.completely_unrelated", message: "unknown key, ignored" }]);
  });

  test("unknown keys do not make the file invalid, and are still reported when it is invalid", () => {
    const { problems, warnings } = rejectedSettings(`[server]\nprot = 1\nport = "x"\n`, { dir: dir.path });
    expect(problems).toEqual(['server.port: expected a whole number, got "x"']);
    expect(warnings).toEqual(['server.prot: unknown key, ignored (did you mean "port"?)']);
  });

  test("a misspelt key inside a page of a list", () => {
    const text = MINIMAL.replace('access_token = "EAAGtoken0001" }', 'access_token = "EAAGtoken0001", nmae = "Shop" }');
    const config = configFromToml(text, { dir: dir.path });
    expect(config.warnings.map((w) => w.path)).toEqual(["endpoints[0].pages[0].nmae"]);
    expect(config.warnings[0]!.message).toContain('"name"');
  });
});

describe("storage.url", () => {
  test("a relative file: URL is made absolute against the settings folder", () => {
    const c = configFromToml(`[storage]\nurl = "file:state/bot.db"\n`, { dir: dir.path });
    expect(c.storage.url).toBe(`file:${dir.path}/state/bot.db`);
  });

  test("absolute, in-memory and remote URLs are left as they are", () => {
    expect(absoluteStorageUrl("file:/var/lib/x.db", "/etc")).toBe("file:/var/lib/x.db");
    expect(absoluteStorageUrl("file:///var/lib/x.db", "/etc")).toBe("file:/var/lib/x.db");
    expect(absoluteStorageUrl("file::memory:", "/etc")).toBe("file::memory:");
    expect(absoluteStorageUrl("libsql://db.example.test", "/etc")).toBe("libsql://db.example.test");
    expect(absoluteStorageUrl("http://127.0.0.1:8081", "/etc")).toBe("http://127.0.0.1:8081");
    expect(absoluteStorageUrl("file:../x.db", "/etc/me")).toBe("file:/etc/x.db");
  });
});
