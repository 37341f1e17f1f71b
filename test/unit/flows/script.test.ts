import { afterAll, describe, expect, test } from "bun:test";
import { FlowError } from "../../../src/flows/flow.ts";
import { SCRIPT_FLOW_TIMEOUT_MS, scriptFlow } from "../../../src/flows/script.ts";
import { tempDir } from "../../helpers/index.ts";
import { flowContext, sampleInput, thrown } from "./support.ts";

const dir = tempDir("script-flows");
afterAll(() => dir.remove());

describe("script flow", () => {
  test("loads a TypeScript module's default export and runs it with the input and the context", async () => {
    const module = dir.write(
      "agent.ts",
      `import type { FlowInput } from ${JSON.stringify(`${import.meta.dir}/../../../src/flows/schema.ts`)};
export default async function agent(input: FlowInput, ctx: { signal: AbortSignal }) {
  const turns = Number(input.context.turns ?? 0) + 1;
  return { outputs: [{ text: "TS says: " + input.text }], context: { turns, aborted: ctx.signal.aborted } };
}
`,
    );
    const flow = await scriptFlow("agent", { kind: "script", module });
    expect(flow.name).toBe("agent");
    expect(flow.kind).toBe("script");
    expect(flow.timeoutMs).toBe(SCRIPT_FLOW_TIMEOUT_MS);
    expect(await flow.run(sampleInput({ text: "hi", context: { turns: 4 } }), flowContext())).toEqual({
      outputs: [{ text: "TS says: hi" }],
      context: { turns: 5, aborted: false },
    });
  });

  test("a plain JavaScript module with a synchronous default export; timeout_ms is kept", async () => {
    const module = dir.write("sync.js", "export default (input) => ({ outputs: [{ text: input.text.toUpperCase() }] });\n");
    const flow = await scriptFlow("sync", { kind: "script", module, timeout_ms: 700 });
    expect(flow.timeoutMs).toBe(700);
    expect(await flow.run(sampleInput({ text: "loud" }), flowContext())).toEqual({ outputs: [{ text: "LOUD" }] });
  });

  test("the module is loaded once, at start", async () => {
    const module = dir.write("counter.ts", "let loads = 0;\nloads++;\nexport default async () => ({ context: { loads } });\n");
    const flow = await scriptFlow("counter", { kind: "script", module });
    await flow.run(sampleInput(), flowContext());
    expect(await flow.run(sampleInput(), flowContext())).toEqual({ context: { loads: 1 } });
  });

  test("a module without a default export is a FlowError that says what is needed", async () => {
    const module = dir.write("named.ts", "export async function agent() { return {}; }\n");
    const error = await thrown(() => scriptFlow("named", { kind: "script", module }));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain(`flows.named.module ${module}`);
    expect(error.message).toContain("must have a default export");
  });

  test("a default export that is not a function is a FlowError", async () => {
    const module = dir.write("object.ts", "export default { outputs: [] };\n");
    const error = await thrown(() => scriptFlow("object", { kind: "script", module }));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain("must have a default export");
  });

  test("a module that throws while loading is a FlowError naming the module and the cause", async () => {
    const module = dir.write("broken.ts", 'throw new Error("missing configuration AGENT_KEY");\nexport default async () => ({});\n');
    const error = await thrown(() => scriptFlow("broken", { kind: "script", module }));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain(`cannot load flows.broken.module ${module}`);
    expect(error.message).toContain("missing configuration AGENT_KEY");
    expect(error.cause).toBeInstanceOf(Error);
  });

  test("a module that does not exist is a FlowError", async () => {
    const module = dir.join("nowhere.ts");
    const error = await thrown(() => scriptFlow("gone", { kind: "script", module }));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain(`cannot load flows.gone.module ${module}`);
  });

  test("an error thrown by the function is a FlowError naming the flow and the module", async () => {
    const module = dir.write("thrower.ts", 'export default async () => { throw new Error("database is down"); };\n');
    const flow = await scriptFlow("thrower", { kind: "script", module });
    const error = await thrown(() => flow.run(sampleInput(), flowContext()));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toBe(`flow thrower (${module}) threw: database is down`);
    expect((error.cause as Error).message).toBe("database is down");
  });

  test("a thrown non-Error value is reported too", async () => {
    const module = dir.write("string-thrower.ts", 'export default async () => { throw "plain string"; };\n');
    const flow = await scriptFlow("s", { kind: "script", module });
    expect((await thrown(() => flow.run(sampleInput(), flowContext()))).message).toContain("threw: plain string");
  });

  test("the turn's signal reaches the function", async () => {
    const module = dir.write(
      "waits.ts",
      "export default (_input: unknown, ctx: { signal: AbortSignal }) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('gave up'))));\n",
    );
    const flow = await scriptFlow("waits", { kind: "script", module });
    const controller = new AbortController();
    const running = thrown(() => flow.run(sampleInput(), flowContext(controller.signal)));
    controller.abort();
    expect((await running).message).toContain("threw: gave up");
  });

  test("builtin:echo needs no file", async () => {
    const flow = await scriptFlow("echo", { kind: "script", module: "builtin:echo" });
    expect(flow.kind).toBe("script");
    const result = (await flow.run(sampleInput({ text: "ping" }), flowContext())) as { outputs: { text: string }[] };
    expect(result.outputs[0]!.text).toBe("You said: ping");
  });
});
