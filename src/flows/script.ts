/**
 * `kind = "script"`: a JS/TS module loaded once at start whose default export is
 * `async (input, ctx) => result`. `builtin:echo` is the demo agent shipped in the binary.
 * Script flows run in the server's own process: they are the operator's trusted code.
 */
import type { FlowSettings } from "../config/schema.ts";
import { echoFlow } from "./builtin-echo.ts";
import { FlowError, type Flow, type FlowContext } from "./flow.ts";
import type { FlowInput } from "./schema.ts";

export const SCRIPT_FLOW_TIMEOUT_MS = 30_000;

type ScriptFunction = (input: FlowInput, ctx: FlowContext) => unknown;

const BUILTINS: Record<string, ScriptFunction> = { "builtin:echo": echoFlow };

export async function scriptFlow(name: string, settings: FlowSettings): Promise<Flow> {
  const module = settings.module!;
  const fn = BUILTINS[module] ?? (await loadModule(name, module));
  return {
    name,
    kind: "script",
    timeoutMs: settings.timeout_ms ?? SCRIPT_FLOW_TIMEOUT_MS,
    async run(input, ctx) {
      try {
        return await fn(input, ctx);
      } catch (error) {
        throw new FlowError(`flow ${name} (${module}) threw: ${(error as Error)?.message ?? String(error)}`, { cause: error });
      }
    },
  };
}

async function loadModule(name: string, path: string): Promise<ScriptFunction> {
  let loaded: { default?: unknown };
  try {
    loaded = await import(path);
  } catch (error) {
    throw new FlowError(`cannot load flows.${name}.module ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (typeof loaded.default !== "function") {
    throw new FlowError(`flows.${name}.module ${path} must have a default export: async (input, ctx) => result`);
  }
  return loaded.default as ScriptFunction;
}
