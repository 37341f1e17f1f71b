import { afterAll, describe, expect, test } from "bun:test";
import { FlowError } from "../../../src/flows/flow.ts";
import { loadFlows } from "../../../src/flows/index.ts";
import { configFromToml, settingsToml, tempDir } from "../../helpers/index.ts";
import { flowContext, sampleInput, thrown } from "./support.ts";

const dir = tempDir("load-flows");
afterAll(() => dir.remove());

dir.write("flows/agent.ts", 'export default async (input: { text: string }) => ({ outputs: [{ text: "script: " + input.text }] });\n');

const FLOWS = `
[flows.remote]
kind = "http"
url = "http://agent.example.test/turn"
timeout_ms = 2000
headers = { authorization = "Bearer agent-secret-123" }

[flows.assistant]
kind = "llm"
url = "http://llm.example.test/v1"
model = "small-model"
api_key = "sk-llm-secret-456"
history_turns = 3

[flows.local]
kind = "script"
module = "flows/agent.ts"
`;

/** A fetch that records what it was asked and answers like both an agent and an LLM. */
function recordingFetch() {
  const calls: { url: string; init: RequestInit | undefined }[] = [];
  const fake = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    calls.push({ url, init });
    if (url.endsWith("/chat/completions")) return Response.json({ choices: [{ message: { role: "assistant", content: "from the LLM" } }] });
    return Response.json({ outputs: [{ text: "from the agent" }] });
  }) as typeof fetch;
  return { fake, calls };
}

describe("loadFlows", () => {
  test("one flow per [flows.*] table, of the right kind, with its settings", async () => {
    const config = configFromToml(settingsToml({ extra: FLOWS }), { dir: dir.path });
    const flows = await loadFlows(config);
    expect([...flows.keys()].sort()).toEqual(["assistant", "echo", "local", "remote"]);
    expect(flows.get("remote")).toMatchObject({ name: "remote", kind: "http", timeoutMs: 2000 });
    expect(flows.get("assistant")).toMatchObject({ name: "assistant", kind: "llm" });
    expect(flows.get("local")).toMatchObject({ name: "local", kind: "script" });
    expect(flows.get("echo")).toMatchObject({ name: "echo", kind: "script" });
  });

  test("http and llm flows use the given fetch; script modules are loaded from the settings folder", async () => {
    const config = configFromToml(settingsToml({ extra: FLOWS }), { dir: dir.path });
    const { fake, calls } = recordingFetch();
    const flows = await loadFlows(config, fake);

    expect(await flows.get("remote")!.run(sampleInput(), flowContext())).toEqual({ outputs: [{ text: "from the agent" }] });
    expect(calls[0]!.url).toBe("http://agent.example.test/turn");
    expect((calls[0]!.init!.headers as Record<string, string>).authorization).toBe("Bearer agent-secret-123");

    const answer = (await flows.get("assistant")!.run(sampleInput({ text: "hi" }), flowContext())) as { outputs: unknown[] };
    expect(answer.outputs).toEqual([{ text: "from the LLM" }]);
    expect(calls[1]!.url).toBe("http://llm.example.test/v1/chat/completions");
    expect((calls[1]!.init!.headers as Record<string, string>).authorization).toBe("Bearer sk-llm-secret-456");
    expect(JSON.parse(calls[1]!.init!.body as string).model).toBe("small-model");

    expect(await flows.get("local")!.run(sampleInput({ text: "yo" }), flowContext())).toEqual({ outputs: [{ text: "script: yo" }] });
    expect(await flows.get("echo")!.run(sampleInput({ text: "yo" }), flowContext())).toMatchObject({ outputs: [{ text: "You said: yo" }] });
    expect(calls).toHaveLength(2);
  });

  test("a script module that cannot be loaded fails loading with a FlowError", async () => {
    dir.write("flows/bad.ts", 'throw new Error("bad module");\n');
    const config = configFromToml(settingsToml({ extra: '[flows.bad]\nkind = "script"\nmodule = "flows/bad.ts"\n' }), { dir: dir.path });
    const error = await thrown(() => loadFlows(config));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain("flows.bad.module");
    expect(error.message).toContain("bad module");
  });

  test("no flows, no registry entries", async () => {
    const config = configFromToml(settingsToml(), { dir: dir.path });
    expect([...(await loadFlows({ ...config, flows: {} })).keys()]).toEqual([]);
  });
});
