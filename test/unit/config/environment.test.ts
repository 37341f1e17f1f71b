import { afterAll, describe, expect, test } from "bun:test";
import { interpolate } from "../../../src/config/interpolate.ts";
import type { SettingsProblem } from "../../../src/config/problems.ts";
import { configFromToml, rejectedSettings, tempDir } from "../../helpers/index.ts";

const dir = tempDir("env");
afterAll(() => dir.remove());

const endpoint = (verifyToken: string, pageToken = "EAAGtoken0001") => `
[flows.support]
kind = "http"
url = "http://127.0.0.1:5005/agent"

[[endpoints]]
id = "support"
flow = "support"
verify_token = "${verifyToken}"
pages = [ { id = "104857600012345", access_token = "${pageToken}" } ]
`;

describe("${ENV} interpolation", () => {
  test("a variable fills a string value", () => {
    const config = configFromToml(endpoint("${FB_VERIFY_TOKEN}", "${FB_PAGE_TOKEN}"), {
      dir: dir.path,
      env: { FB_VERIFY_TOKEN: "vt-from-env", FB_PAGE_TOKEN: "EAAGfromenv" },
    });
    expect(config.endpoints[0]!.verify_token).toBe("vt-from-env");
    expect(config.endpoints[0]!.pages[0]!.access_token).toBe("EAAGfromenv");
  });

  test("inside a longer string, in lists and in inline tables", () => {
    const config = configFromToml(
      `[admin]\napi_keys = ["\${K1}", "prefix-\${K2}-suffix"]\n[flows.support]\nkind = "http"\nurl = "http://\${HOST}:5005/agent"\nheaders = { Authorization = "Bearer \${AGENT_TOKEN}" }\n`,
      { dir: dir.path, env: { K1: "admin-key-0123456789", K2: "abcdefghij", HOST: "10.0.0.7", AGENT_TOKEN: "agent-tok-xyz" } },
    );
    expect(config.admin.api_keys).toEqual(["admin-key-0123456789", "prefix-abcdefghij-suffix"]);
    expect(config.flows.support!.url).toBe("http://10.0.0.7:5005/agent");
    expect(config.flows.support!.headers).toEqual({ Authorization: "Bearer agent-tok-xyz" });
  });

  test("an unset variable is an error naming it, at the key that uses it", () => {
    const { problems } = rejectedSettings(endpoint("${FB_VERIFY_TOKEN}"), { dir: dir.path, env: {} });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toStartWith("endpoints[0].verify_token: environment variable FB_VERIFY_TOKEN is not set");
  });

  test("every unset variable is reported", () => {
    const { problems } = rejectedSettings(`${endpoint("${A_TOKEN}", "${B_TOKEN}")}[log]\nlevel = "\${LOG_LEVEL}"\n`, {
      dir: dir.path,
      env: {},
    });
    expect(problems.some((p) => p.startsWith("endpoints[0].verify_token:") && p.includes("A_TOKEN"))).toBe(true);
    expect(problems.some((p) => p.startsWith("endpoints[0].pages[0].access_token:") && p.includes("B_TOKEN"))).toBe(true);
    expect(problems.some((p) => p.startsWith("log.level:") && p.includes("LOG_LEVEL"))).toBe(true);
  });

  test("an empty variable counts as unset", () => {
    const { problems } = rejectedSettings(endpoint("${FB_VERIFY_TOKEN}"), { dir: dir.path, env: { FB_VERIFY_TOKEN: "" } });
    expect(problems[0]).toContain("FB_VERIFY_TOKEN is not set");
  });

  test("${X:-default} uses the default only when X is unset", () => {
    const text = `[server]\nhost = "\${BIND:-0.0.0.0}"\n[storage]\nurl = "\${DB_URL:-file:default.db}"\n`;
    const unset = configFromToml(text, { dir: dir.path, env: {} });
    expect(unset.server.host).toBe("0.0.0.0");
    expect(unset.storage.url).toBe(`file:${dir.path}/default.db`);
    const set = configFromToml(text, { dir: dir.path, env: { BIND: "10.1.2.3" } });
    expect(set.server.host).toBe("10.1.2.3");
  });

  test("${X:-} gives an empty string", () => {
    const config = configFromToml(`[flows.x]\nkind = "http"\nurl = "http://a"\nsystem_prompt = "\${PROMPT:-}"\n`, { dir: dir.path, env: {} });
    expect(config.flows.x!.system_prompt).toBe("");
  });

  test("$${ is a literal ${", () => {
    const config = configFromToml(`[flows.x]\nkind = "http"\nurl = "http://a"\nsystem_prompt = "Say $\${NAME} and \${GREETING}"\n`, {
      dir: dir.path,
      env: { NAME: "never used", GREETING: "hello" },
    });
    expect(config.flows.x!.system_prompt).toBe("Say ${NAME} and hello");
  });

  test("a lone $ and $NAME without braces are left alone", () => {
    const config = configFromToml(`[flows.x]\nkind = "http"\nurl = "http://a"\nsystem_prompt = "costs $5, ask $USER"\n`, {
      dir: dir.path,
      env: { USER: "nobody" },
    });
    expect(config.flows.x!.system_prompt).toBe("costs $5, ask $USER");
  });

  test("non-string values are untouched, and keys are not interpolated", () => {
    const problems: SettingsProblem[] = [];
    const out = interpolate({ a: 1, b: true, "${K}": "${V}", list: [2, "${V}"] }, [], { K: "k", V: "v" }, problems);
    expect(out).toEqual({ a: 1, b: true, "${K}": "v", list: [2, "v"] });
    expect(problems).toEqual([]);
  });

  test("the path of a problem inside a list", () => {
    const problems: SettingsProblem[] = [];
    interpolate({ admin: { api_keys: ["ok", "${MISSING_KEY}"] } }, [], {}, problems);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe("admin.api_keys[1]");
    expect(problems[0]!.message).toContain("MISSING_KEY");
  });
});

describe("numbers and booleans from the environment", () => {
  test("a variable can set a numeric or boolean key", () => {
    const config = configFromToml(`[server]\nport = "\${PORT}"\n[metrics]\nenabled = "\${METRICS}"\n${endpoint("vt-123456")}`, {
      dir: dir.path,
      env: { PORT: "9090", METRICS: "false" },
    });
    expect(config.server.port).toBe(9090);
    expect(config.metrics.enabled).toBe(false);
  });

  test("a value that is not exactly a number stays an error", () => {
    const { problems } = rejectedSettings(`[server]\nport = "\${PORT}"\n${endpoint("vt-123456")}`, { dir: dir.path, env: { PORT: "90 90" } });
    expect(problems).toContain('server.port: expected a whole number, got "90 90"');
  });
});
