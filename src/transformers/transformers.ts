/**
 * Transformers: the operator's code hooks, per endpoint, with the semantics of Cognigy's endpoint
 * transformers (a module written for Cognigy runs here as it is):
 *
 * - `handleInput({ endpoint, request, event })` → `{ user_id?, session_id?, text?, data? }`:
 *   fields left undefined keep the endpoint's values; a falsy return drops the input (no flow).
 * - `handleOutput({ endpoint, output, processedOutput, userId, sessionId })` → the Messenger
 *   message to send, as given; falsy drops it.
 * - `handleExecutionFinished({ endpoint, userId, sessionId })` after each turn; its return is ignored.
 * - `handleInject` / `handleNotify({ endpoint, request })` map a body posted to
 *   `/webhooks/{endpoint}/inject` or `/notify` into `{ user_id, session_id?, text?, data? }`.
 * - `handlePreNlu` / `handlePostNlu` around the NLU connector (`nluHook`; docs/nlu.md).
 *
 * Each function runs only when switched on, in a worker, stopped after 5 s (host.ts). Return
 * values are checked (ids ≤ 256 characters, text ≤ 10,000, data an object). An error or an invalid
 * return is logged with the endpoint and the function and ignored — the original value goes on —
 * unless `abort_on_error`, which stops that input or output.
 */
import { Type } from "@sinclair/typebox";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import { checkValue, type Checked } from "../core/checks.ts";
import { TransformerError, TransformerHost } from "./host.ts";
import { SessionStorage } from "./storage.ts";
import { maskMessage } from "../log/mask.ts";

export const TransformedInput = Type.Object({
  user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  session_id: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  text: Type.Optional(Type.String({ maxLength: 10_000 })),
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

export interface InputChanges {
  user_id?: string;
  session_id?: string;
  text?: string;
  data?: Record<string, unknown>;
}

/**
 * What a transformer decided: go on (with changes, or with the original), drop it, or stop
 * (abort_on_error; `unavailable` when the cause was the server, not the code: a time limit or a stop).
 */
export type Verdict<T> = { action: "continue"; value: T | null } | { action: "drop" } | { action: "abort"; reason: string; unavailable: boolean };

type Fn = "handleInput" | "handleOutput" | "handleExecutionFinished" | "handleInject" | "handleNotify" | NluHook;
/** The hooks around the NLU connector (docs/nlu.md); their returns are checked by the connector (src/nlu/). */
export type NluHook = "handlePreNlu" | "handlePostNlu";
const SWITCH: Record<Fn, keyof EndpointSettings["transformers"]> = {
  handleInput: "input",
  handleOutput: "output",
  handleExecutionFinished: "execution_finished",
  handleInject: "inject",
  handleNotify: "notify",
  handlePreNlu: "pre_nlu",
  handlePostNlu: "post_nlu",
};

export interface TransformersDeps {
  config: Config;
  /** The endpoints now, and those a reload removed (config/live.ts `known`); by default those of `config`. */
  endpoints?: ReadonlyMap<string, EndpointSettings>;
  database: Database;
  writes: WriteQueue;
  clock: Clock;
  log: Logger;
  poolSize?: number;
  timeoutMs?: number;
}

export class Transformers {
  readonly #hosts = new Map<string, TransformerHost>();
  readonly #endpoints: ReadonlyMap<string, EndpointSettings>;

  private constructor(deps: TransformersDeps) {
    this.#endpoints = deps.endpoints ?? new Map(deps.config.endpoints.map((e) => [e.id, e]));
  }

  /** Starts a worker pool for each endpoint whose transformer module has a function switched on. */
  static async start(deps: TransformersDeps): Promise<Transformers> {
    const transformers = new Transformers(deps);
    for (const endpoint of deps.config.endpoints) {
      const t = endpoint.transformers;
      const on = (Object.keys(SWITCH) as Fn[]).filter((fn) => t[SWITCH[fn]] === true);
      if (!t.module || on.length === 0) continue;
      const storage = new SessionStorage({ endpointId: endpoint.id, database: deps.database, writes: deps.writes, clock: deps.clock });
      const host = new TransformerHost({
        endpointId: endpoint.id,
        module: t.module,
        storage,
        log: deps.log,
        poolSize: deps.poolSize,
        timeoutMs: deps.timeoutMs,
      });
      await host.start();
      const missing = on.filter((fn) => !host.has(fn));
      if (missing.length > 0)
        deps.log.warn(
          `transformer module ${t.module} of endpoint ${endpoint.id} has no ${missing.join(", ")}, though switched on: add the function or switch it off`,
          { endpoint: endpoint.id },
        );
      transformers.#hosts.set(endpoint.id, host);
    }
    return transformers;
  }

  /** Whether the endpoint's function is switched on (and its module loaded). */
  enabled(endpointId: string, fn: Fn): boolean {
    const endpoint = this.#endpoints.get(endpointId);
    return !!endpoint && endpoint.transformers[SWITCH[fn]] === true && this.#hosts.has(endpointId);
  }

  async input(endpoint: EndpointSettings, args: { request: unknown; event: unknown }, log: Logger): Promise<Verdict<InputChanges>> {
    return this.#mapping(endpoint, "handleInput", args, log, false);
  }

  async inject(endpoint: EndpointSettings, args: { request: unknown }, log: Logger): Promise<Verdict<InputChanges>> {
    return this.#mapping(endpoint, "handleInject", args, log, true);
  }

  async notify(endpoint: EndpointSettings, args: { request: unknown }, log: Logger): Promise<Verdict<InputChanges>> {
    return this.#mapping(endpoint, "handleNotify", args, log, true);
  }

  async output(
    endpoint: EndpointSettings,
    args: { output: unknown; processedOutput: Record<string, unknown>; userId: string; sessionId: string },
    log: Logger,
  ): Promise<Verdict<Record<string, unknown>>> {
    const outcome = await this.#call(endpoint, "handleOutput", args);
    if ("failed" in outcome) return this.#failed(endpoint, "handleOutput", outcome.failed, log, outcome.unavailable);
    if (!outcome.value) return { action: "drop" };
    if (typeof outcome.value !== "object" || Array.isArray(outcome.value)) {
      return this.#failed(endpoint, "handleOutput", "it must return a Messenger message object (or a falsy value to send nothing)", log);
    }
    return { action: "continue", value: outcome.value as Record<string, unknown> };
  }

  /**
   * After a turn (its replies are queued, its event done). The user's lane waits for it, so that
   * it never runs beside that user's next handleInput (both may change the same session storage);
   * other users are not held up. Failures are only logged.
   */
  async executionFinished(endpoint: EndpointSettings, args: { userId: string; sessionId: string }, log: Logger): Promise<void> {
    if (!this.enabled(endpoint.id, "handleExecutionFinished")) return;
    const outcome = await this.#call(endpoint, "handleExecutionFinished", args);
    if ("failed" in outcome)
      log.warn(`transformer handleExecutionFinished failed: ${maskMessage(outcome.failed, endpoint.data_protection.mask_logging)}`, {
        function: "handleExecutionFinished",
      });
  }

  /**
   * `handlePreNlu` / `handlePostNlu`: the return, checked by `check` (the NLU connector knows its
   * shape); a falsy return is "drop", and a failure follows the rules of the other functions.
   */
  async nluHook<T>(
    endpoint: EndpointSettings,
    fn: NluHook,
    args: Record<string, unknown>,
    log: Logger,
    check: (value: unknown) => Checked<T>,
  ): Promise<Verdict<T>> {
    const outcome = await this.#call(endpoint, fn, args);
    if ("failed" in outcome) return this.#failed(endpoint, fn, outcome.failed, log, outcome.unavailable);
    if (!outcome.value) return { action: "drop" };
    const checked = check(outcome.value);
    if (!checked.ok) return this.#failed(endpoint, fn, `invalid return value: ${checked.problem}`, log);
    return { action: "continue", value: checked.value };
  }

  /** Reloads every endpoint's module (SIGHUP). */
  async reload(): Promise<void> {
    await Promise.all([...this.#hosts.values()].map((h) => h.reload()));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#hosts.values()].map((h) => h.stop()));
  }

  async #mapping(endpoint: EndpointSettings, fn: Fn, args: Record<string, unknown>, log: Logger, needsUser: boolean): Promise<Verdict<InputChanges>> {
    const outcome = await this.#call(endpoint, fn, args);
    if ("failed" in outcome) return this.#failed(endpoint, fn, outcome.failed, log, outcome.unavailable);
    if (!outcome.value) return { action: "drop" };
    const raw = outcome.value as Record<string, unknown>;
    if (typeof raw !== "object" || Array.isArray(raw))
      return this.#failed(endpoint, fn, "it must return an object { user_id, session_id, text, data } or a falsy value", log);
    // Cognigy's names are accepted too.
    const given: Record<string, unknown> = { ...raw };
    if (given.user_id === undefined && given.userId !== undefined) given.user_id = given.userId;
    if (given.session_id === undefined && given.sessionId !== undefined) given.session_id = given.sessionId;
    const value = Object.fromEntries(["user_id", "session_id", "text", "data"].filter((k) => given[k] !== undefined).map((k) => [k, given[k]]));
    const checked = checkValue(TransformedInput, value);
    if (!checked.ok) return this.#failed(endpoint, fn, `invalid return value: ${checked.problem}`, log);
    if (needsUser && !checked.value.user_id) return this.#failed(endpoint, fn, "invalid return value: user_id is required", log);
    return { action: "continue", value: checked.value };
  }

  async #call(endpoint: EndpointSettings, fn: Fn, args: Record<string, unknown>): Promise<{ value: unknown } | { failed: string; unavailable: boolean }> {
    const host = this.#hosts.get(endpoint.id);
    if (!host?.has(fn)) return { failed: `the transformer module has no ${fn}`, unavailable: false };
    try {
      // Inject, notify and the end of a turn are answered or done right after: their storage is fsynced.
      const durableStorage = fn === "handleInject" || fn === "handleNotify" || fn === "handleExecutionFinished";
      return { value: await host.run(fn, { endpoint: endpointView(endpoint), ...args }, { durableStorage }) };
    } catch (error) {
      return { failed: (error as Error).message, unavailable: error instanceof TransformerError && error.unavailable };
    }
  }

  #failed<T>(endpoint: EndpointSettings, fn: Fn, reason: string, log: Logger, unavailable = false): Verdict<T> {
    const abort = endpoint.transformers.abort_on_error;
    const said = maskMessage(reason, endpoint.data_protection.mask_logging);
    log.warn(`transformer ${fn} failed; ${abort ? "abort_on_error: this one is stopped" : "the original value is used"}: ${said}`, { function: fn });
    return abort ? { action: "abort", reason, unavailable } : { action: "continue", value: null };
  }
}

/** What a transformer sees of its endpoint: no tokens, no secrets. */
function endpointView(endpoint: EndpointSettings) {
  return {
    id: endpoint.id,
    flow: endpoint.flow,
    locale: endpoint.locale,
    enabled: endpoint.enabled,
    pages: endpoint.pages.map((p) => ({ id: p.id, name: p.name ?? null })),
  };
}
