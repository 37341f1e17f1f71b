/**
 * `kind = "script"`: the operator's module exporting `getNluResult({ text, data, language })`
 * (or registering it with `createNluCodeTransformer({ getNluResult })`), run like the transformers:
 * in a pool of worker threads (transformers/host.ts) stopped after `timeout_ms`, reloaded when the
 * file changes, with the same globals (`httpRequest`, `getSessionStorage`, `console`). It returns
 * `{ intent, score?, entities?, ranking? }` (result.ts `NluAnswer`), or a falsy value: nothing
 * understood (`intent: null`).
 */
import type { NluSettings } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { TRANSFORMER_TIMEOUT_MS, TransformerError, TransformerHost } from "../transformers/host.ts";
import type { SessionStorage } from "../transformers/storage.ts";
import { NluFailure } from "./call.ts";
import type { Connector } from "./connector.ts";
import { resultFromAnswer } from "./result.ts";

/** The host's words for a run stopped by the time limit, or one that found no free worker in time (host.ts). */
const TIME_LIMIT = /did not finish within|could not start within/;

export interface ScriptConnectorOptions {
  endpointId: string;
  storage: SessionStorage;
  log: Logger;
  poolSize?: number;
}

/** Starts the workers with the module; rejects when it does not load or has no getNluResult. */
export async function scriptConnector(settings: NluSettings, options: ScriptConnectorOptions): Promise<Connector> {
  const module = settings.module!;
  const host = new TransformerHost({
    endpointId: options.endpointId,
    module,
    storage: options.storage,
    log: options.log.child({ nlu: "script" }),
    poolSize: options.poolSize,
    timeoutMs: settings.timeout_ms,
    // A run may be limited to 100 ms; loading the module (and what it imports) gets the transformers' 5 s at least.
    loadTimeoutMs: Math.max(settings.timeout_ms, TRANSFORMER_TIMEOUT_MS),
  });
  await host.start();
  if (!host.has("getNluResult")) {
    await host.stop();
    throw new Error(`the NLU module ${module} of endpoint ${options.endpointId} has no getNluResult: export getNluResult({ text, data, language })`);
  }
  const what = `getNluResult of ${module}`;
  return {
    what,
    ownTimeLimit: true,
    async parse(query) {
      let value: unknown;
      try {
        value = await host.run("getNluResult", { text: query.text, data: query.data, language: query.language });
      } catch (error) {
        const message = (error as Error)?.message ?? String(error);
        const unavailable = error instanceof TransformerError && error.unavailable;
        throw new NluFailure(message, unavailable && TIME_LIMIT.test(message) ? "timeout" : "script_error", unavailable);
      }
      if (!value) return { intent: null, score: 0, entities: [], raw: value ?? null };
      const result = resultFromAnswer(value, value);
      if (!result.ok) throw new NluFailure(`${what} returned an invalid result: ${result.problem}`, "invalid_answer", false);
      return result.value;
    },
    reload: () => host.reload(),
    stop: () => host.stop(),
  };
}
