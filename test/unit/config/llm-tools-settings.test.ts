/** `[[flows.X.tools]]` of an llm flow (config/schema.ts LlmToolSettings, validate.ts): errors name the key's path and say what to do. */
import { afterAll, describe, expect, test } from "bun:test";
import { configFromToml, rejectedSettings, tempDir } from "../../helpers/index.ts";

const dir = tempDir("llm-tools-settings");
dir.write("tools/order.json", JSON.stringify({ type: "object", properties: { order_id: { type: "string" } } }));
dir.write("tools/broken.json", "{ not json");
dir.write("secrets/tool-key", "tool-key-from-file-123\n");
afterAll(() => dir.remove());

const ENDPOINT =
  '[[endpoints]]\nid = "shop"\nflow = "shop"\nverify_token = "verify-token"\npages = [ { id = "104857600012345", access_token = "EAAGtoken" } ]\n';
const flow = (tools: string, extra = "") => `[flows.shop]\nkind = "llm"\nurl = "http://127.0.0.1:11434/v1"\nmodel = "m"\n${extra}${tools}${ENDPOINT}`;
const TOOL = '[[flows.shop.tools]]\nname = "order_status"\ndescription = "Where an order is"\nurl = "http://127.0.0.1:7000/order-status"\n';
const PARAMS = 'parameters = { type = "object", properties = { order_id = { type = "string" } }, required = ["order_id"] }\n';
const problemsOf = (text: string, env: Record<string, string> = {}) => rejectedSettings(text, { dir: dir.path, env }).problems;

describe("llm flow tools in the settings", () => {
  test("a tool with inline parameters, its key from a file, and the flow's limits load; the key is a secret", () => {
    const config = configFromToml(flow(`${TOOL}${PARAMS}api_key_file = "secrets/tool-key"\n`, "max_tool_rounds = 3\ntool_timeout_ms = 2500\n"), {
      dir: dir.path,
    });
    const shop = config.flows.shop!;
    expect(shop.max_tool_rounds).toBe(3);
    expect(shop.tool_timeout_ms).toBe(2500);
    expect(shop.tools![0]).toMatchObject({ name: "order_status", api_key: "tool-key-from-file-123" });
    expect(shop.tools![0]!.parameters).toEqual({ type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] });
    expect(config.secrets).toContain("tool-key-from-file-123");
  });

  test("parameters_file is read relative to the settings folder; a secret header from ${ENV}", () => {
    const config = configFromToml(flow(`${TOOL}parameters_file = "tools/order.json"\nheaders = { "X-Api-Key" = "\${SHOP_KEY}" }\n`), {
      dir: dir.path,
      env: { SHOP_KEY: "shop-key-from-env-9876" },
    });
    expect(config.flows.shop!.tools![0]!.parameters_file).toBe(dir.join("tools/order.json"));
    expect(config.secrets).toContain("shop-key-from-env-9876");
  });

  test("missing parameters, a schema that is not an object, a file that is not JSON, both at once", () => {
    expect(problemsOf(flow(TOOL))).toEqual([
      'flows.shop.tools[0].parameters: missing: the JSON Schema of the arguments (parameters = { type = "object", properties = { … } }), or parameters_file',
    ]);
    expect(problemsOf(flow(`${TOOL}parameters = { type = "string" }\n`))).toEqual([
      'flows.shop.tools[0].parameters: must be a JSON Schema with type = "object": the model passes the arguments as one object',
    ]);
    const [broken] = problemsOf(flow(`${TOOL}parameters_file = "tools/broken.json"\n`));
    expect(broken).toStartWith(`flows.shop.tools[0].parameters_file: cannot read a JSON Schema from ${dir.join("tools/broken.json")}: `);
    expect(problemsOf(flow(`${TOOL}parameters_file = "tools/missing.json"\n`))).toEqual([
      `flows.shop.tools[0].parameters_file: cannot read a JSON Schema from ${dir.join("tools/missing.json")}: ENOENT`,
    ]);
    expect(problemsOf(flow(`${TOOL}${PARAMS}parameters_file = "tools/order.json"\n`))).toEqual([
      "flows.shop.tools[0].parameters_file: set either parameters or parameters_file, not both",
    ]);
  });

  test("duplicate names, a bad name, a missing url, a bad method, limits out of range", () => {
    expect(problemsOf(flow(`${TOOL}${PARAMS}${TOOL}${PARAMS}`))).toEqual([
      'flows.shop.tools[1].name: "order_status" is already the name of tools[0]; tool names must be unique',
    ]);
    const bad = `[[flows.shop.tools]]\nname = "order status"\ndescription = "d"\nmethod = "GET"\n${PARAMS}`;
    const problems = problemsOf(flow(bad, "max_tool_rounds = 0\n"));
    expect(problems.some((p) => p.startsWith("flows.shop.tools[0].name: "))).toBe(true);
    expect(problems.some((p) => p.startsWith("flows.shop.tools[0].url: "))).toBe(true);
    expect(problems.some((p) => p.startsWith("flows.shop.tools[0].method: "))).toBe(true);
    expect(problems.some((p) => p.startsWith("flows.shop.max_tool_rounds: "))).toBe(true);
  });

  test("tools on a flow that is not llm", () => {
    const text = `[flows.shop]\nkind = "http"\nurl = "http://127.0.0.1:5005/agent"\ntool_timeout_ms = 1000\n${ENDPOINT}`;
    expect(problemsOf(text)).toEqual(['flows.shop.tool_timeout_ms: only for kind "llm" (this flow is "http")']);
  });

  test("an unknown key in a tool is named with its path", () => {
    const config = configFromToml(flow(`${TOOL}${PARAMS}descripton = "typo"\n`), { dir: dir.path });
    const warnings = config.warnings.map((w) => `${w.path}: ${w.message}`);
    expect(warnings).toEqual(['flows.shop.tools[0].descripton: unknown key, ignored (did you mean "description"?)']);
  });
});

describe("llm flow built-in tools, prompt and pacing in the settings", () => {
  test("builtin_tools, history_tokens and message_max_chars load", () => {
    const extra = 'builtin_tools = ["offer_quick_replies", "handover", "remember"]\nhistory_tokens = 2000\nmessage_max_chars = 300\n';
    const shop = configFromToml(flow("", `${extra}system_prompt = "Hi {{first_name}}, today is {{date}} ({{contact.plan}})."\n`), { dir: dir.path }).flows
      .shop!;
    expect(shop.builtin_tools).toEqual(["offer_quick_replies", "handover", "remember"]);
    expect(shop.history_tokens).toBe(2000);
    expect(shop.message_max_chars).toBe(300);
  });

  test("an unknown built-in tool, one named twice, a tool of the operator with a built-in's name, an unknown placeholder", () => {
    expect(problemsOf(flow("", 'builtin_tools = ["send_video"]\n')).join("\n")).toContain("flows.shop.builtin_tools[0]");
    expect(problemsOf(flow("", 'builtin_tools = ["handover", "handover"]\n')).join("\n")).toContain("flows.shop.builtin_tools");
    expect(problemsOf(flow(`${TOOL.replace("order_status", "handover")}${PARAMS}`))).toEqual([
      'flows.shop.tools[0].name: "handover" is the name of a built-in tool (builtin_tools); choose another name',
    ]);
    const [problem] = problemsOf(flow("", 'system_prompt = "Hello {{frist_name}}"\n'));
    expect(problem).toStartWith("flows.shop.system_prompt: unknown placeholder {{frist_name}}; the placeholders are {{first_name}}, {{last_name}}");
    expect(problem).toContain("{{contact.<field>}}");
  });

  test("the llm-only keys are refused on other kinds", () => {
    const http = `[flows.shop]\nkind = "http"\nurl = "http://127.0.0.1:5005/agent"\nbuiltin_tools = ["handover"]\nmessage_max_chars = 300\n${ENDPOINT}`;
    expect(problemsOf(http)).toEqual([
      'flows.shop.builtin_tools: only for kind "llm" (this flow is "http")',
      'flows.shop.message_max_chars: only for kind "llm" (this flow is "http")',
    ]);
  });
});
