/** All flows of the settings, loaded once at start. */
import type { Config } from "../config/load.ts";
import type { Flow } from "./flow.ts";
import { httpFlow } from "./http.ts";
import { llmFlow, type LlmFlowDeps } from "./llm.ts";
import { scriptFlow } from "./script.ts";

export type FlowRegistry = ReadonlyMap<string, Flow>;

export async function loadFlows(config: Config, fetchImpl: typeof fetch = fetch, deps: Omit<LlmFlowDeps, "fetch"> = {}): Promise<FlowRegistry> {
  const flows = new Map<string, Flow>();
  for (const [name, settings] of Object.entries(config.flows)) {
    switch (settings.kind) {
      case "http":
        flows.set(name, httpFlow(name, settings, fetchImpl));
        break;
      case "llm":
        flows.set(name, llmFlow(name, settings, { ...deps, fetch: fetchImpl }));
        break;
      case "script":
        flows.set(name, await scriptFlow(name, settings));
        break;
    }
  }
  return flows;
}
