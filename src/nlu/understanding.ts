/**
 * The NLU connector of each endpoint (docs/nlu.md): what the user means, in `input.nlu`, before
 * the flow runs. The turn (conversations/turn.ts) calls `understand` in the user's inbound lane,
 * after the input transformer and real-time translation; it satisfies the turn's
 * `TurnUnderstanding` by its shape. For one input:
 *
 * 1. skipped (`input.nlu` stays null, no error): the endpoint has no connector, the input is a
 *    payload (unless `nlu_payloads`), or it has no text;
 * 2. `handlePreNlu({ text, data, language })` → `{ text?, data? }`, when switched on;
 * 3. the connector, with `timeout_ms` per try and `retries` (call.ts);
 * 4. `min_score` (result.ts);
 * 5. `handlePostNlu({ text, data, nluResult, connectorOutput })` → `{ data?, nluResult? }`
 *    (`nluResult: null`: nothing understood after all).
 *
 * A failure sets `input.nlu = null` and `input.nlu_error` (why, without secrets), is logged and
 * counted, and the flow runs — unless `on_error = "skip_turn"`: then `understand` resolves false.
 * A hook that fails with `abort_on_error` is such a failure; without it, the hook is left out.
 * Nothing here is shared between users but the connectors, which hold no lock: a slow NLU service
 * holds up only the lane of the user who waits for it.
 */
import { Type } from "@sinclair/typebox";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import { checkValue, type Checked } from "../core/checks.ts";
import type { Clock, Timers } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { FlowInput } from "../flows/schema.ts";
import type { Logger } from "../log/logger.ts";
import { maskMessage } from "../log/mask.ts";
import { scrub } from "../log/scrub.ts";
import type { Registry } from "../metrics/registry.ts";
import type { Transformers } from "../transformers/transformers.ts";
import { SessionStorage } from "../transformers/storage.ts";
import { NluFailure, withRetries, type NluOutcome } from "./call.ts";
import type { Connector, NluQuery } from "./connector.ts";
import { httpConnector } from "./http.ts";
import { llmConnector } from "./llm.ts";
import { rasaConnector } from "./rasa.ts";
import { applyMinScore, resultFromAnswer, type NluResult } from "./result.ts";
import { scriptConnector } from "./script.ts";

/** What `handlePreNlu` may return. */
const PreNluReturn = Type.Object({ text: Type.Optional(Type.String({ maxLength: 10_000 })), data: Type.Optional(Type.Record(Type.String(), Type.Unknown())) });
/** What `handlePostNlu` may return (`nluResult` is checked as a result: result.ts). */
const PostNluReturn = Type.Object({ data: Type.Optional(Type.Record(Type.String(), Type.Unknown())), nluResult: Type.Optional(Type.Unknown()) });

/** What understand() reads of the turn's context (conversations/language.ts `TurnContext`). */
export interface NluContext {
  log: Logger;
  /** The input came as a payload (a button, a quick reply, a postback). */
  isPayload: boolean;
  // Not the turn's stop signal: a call in progress ends by its own time limit (call.ts), so that
  // the turn finishes with what the NLU said rather than run the flow without it.
}

export interface UnderstandingDeps {
  /** The endpoints, and every secret of the settings (kept out of `nlu_error`). */
  config: Pick<Config, "endpoints" | "secrets">;
  /** For a `script` connector's `getSessionStorage` (the transformers' storage of the endpoint). */
  database: Database;
  writes: WriteQueue;
  clock: Clock;
  /** The time limits and the pauses between tries. */
  timers: Timers;
  log: Logger;
  metrics: Registry;
  /** The endpoints' transformer modules, for handlePreNlu / handlePostNlu. */
  transformers?: Pick<Transformers, "enabled" | "nluHook">;
  fetch?: typeof fetch;
  /** The `script` connectors' worker pools. */
  poolSize?: number;
}

export class Understanding {
  readonly #connectors = new Map<string, Connector>();
  readonly #requests;
  readonly #seconds;
  readonly #retries;

  private constructor(private readonly deps: UnderstandingDeps) {
    const { metrics } = deps;
    this.#requests = metrics.counter(
      "messenger_nlu_requests_total",
      "NLU calls by endpoint and result (ok, http_error, network_error, timeout, invalid_answer, script_error).",
    );
    this.#seconds = metrics.histogram("messenger_nlu_request_seconds", "Time an NLU call took, its tries included, by endpoint.");
    this.#retries = metrics.counter("messenger_nlu_retries_total", "Further tries of NLU calls (after a 5xx, a network error or a time limit), by endpoint.");
  }

  /** Makes each endpoint's connector; rejects when a `script` module does not load (the server does not start). */
  static async start(deps: UnderstandingDeps): Promise<Understanding> {
    const understanding = new Understanding(deps);
    const fetchImpl = deps.fetch ?? fetch;
    try {
      for (const endpoint of deps.config.endpoints) {
        const nlu = endpoint.nlu;
        const log = deps.log.child({ endpoint: endpoint.id });
        let connector: Connector | null = null;
        if (nlu.kind === "http") connector = httpConnector(nlu, fetchImpl);
        else if (nlu.kind === "rasa") connector = rasaConnector(nlu, fetchImpl);
        else if (nlu.kind === "llm") connector = llmConnector(nlu, fetchImpl, log);
        else if (nlu.kind === "script") {
          const storage = new SessionStorage({ endpointId: endpoint.id, database: deps.database, writes: deps.writes, clock: deps.clock });
          connector = await scriptConnector(nlu, { endpointId: endpoint.id, storage, log: deps.log, poolSize: deps.poolSize });
        }
        if (!connector) continue;
        understanding.#connectors.set(endpoint.id, connector);
      }
    } catch (error) {
      await understanding.stop();
      throw error;
    }
    return understanding;
  }

  /** Whether the endpoint has a connector. */
  has(endpointId: string): boolean {
    return this.#connectors.has(endpointId);
  }

  /** Sets `input.nlu` (or null and `input.nlu_error`); false when the flow must not run for this input. */
  async understand(endpoint: EndpointSettings, key: UserKey, input: FlowInput, ctx: NluContext): Promise<boolean> {
    const connector = this.#connectors.get(key.endpointId);
    const settings = endpoint.nlu;
    if (!connector || (ctx.isPayload && !settings.nlu_payloads) || input.text.trim() === "") return true;
    const hooks = this.deps.transformers;
    const language = nluLanguage(input);

    if (hooks?.enabled(key.endpointId, "handlePreNlu")) {
      const verdict = await hooks.nluHook(endpoint, "handlePreNlu", { text: input.text, data: withoutRequest(input), language }, ctx.log, (v) =>
        checkValue(PreNluReturn, v),
      );
      if (verdict.action === "drop") {
        ctx.log.debug("NLU left out for this input: handlePreNlu returned nothing");
        return true;
      }
      if (verdict.action === "abort") return this.#failed(endpoint, input, `the pre-NLU transformer failed: ${verdict.reason}`, ctx.log);
      if (verdict.value?.text !== undefined) input.text = verdict.value.text;
      if (verdict.value?.data !== undefined) replaceData(input, verdict.value.data);
      if (input.text.trim() === "") return true; // nothing left to understand
    }

    const query: NluQuery = {
      text: input.text,
      language,
      data: withoutRequest(input),
      userId: input.user_id,
      endpointId: input.endpoint_id,
      sessionId: input.session_id,
      ...messageIdOf(input),
    };
    const labels = { endpoint: key.endpointId };
    const started = performance.now();
    let outcome: NluOutcome = "ok";
    let result: NluResult;
    try {
      result = await withRetries((signal) => connector.parse(query, signal), {
        what: connector.what,
        timeoutMs: settings.timeout_ms,
        retries: settings.retries,
        timers: this.deps.timers,
        ownTimeLimit: connector.ownTimeLimit,
        onRetry: (failure) => {
          this.#retries.inc(labels);
          ctx.log.debug(`NLU: trying again after: ${maskMessage(failure.message, endpoint.data_protection.mask_logging)}`);
        },
      });
    } catch (error) {
      const failure = error instanceof NluFailure ? error : new NluFailure(String((error as Error)?.message ?? error), "script_error", false);
      outcome = failure.outcome;
      return this.#failed(endpoint, input, failure.message, ctx.log);
    } finally {
      this.#requests.inc({ ...labels, result: outcome });
      this.#seconds.observe(labels, (performance.now() - started) / 1000);
    }
    result = applyMinScore(result, settings.min_score);

    if (hooks?.enabled(key.endpointId, "handlePostNlu")) {
      const connectorOutput = result.raw;
      const args = { text: input.text, data: withoutRequest(input), nluResult: result, connectorOutput };
      const verdict = await hooks.nluHook(endpoint, "handlePostNlu", args, ctx.log, (v) => postNluReturn(v, connectorOutput));
      if (verdict.action === "drop") {
        ctx.log.debug("NLU result dropped: handlePostNlu returned nothing");
        return true;
      }
      if (verdict.action === "abort") return this.#failed(endpoint, input, `the post-NLU transformer failed: ${verdict.reason}`, ctx.log);
      if (verdict.value?.data !== undefined) replaceData(input, verdict.value.data);
      if (verdict.value?.nluResult === null) {
        ctx.log.debug("NLU result dropped: handlePostNlu returned nluResult null");
        return true;
      }
      if (verdict.value?.nluResult) result = verdict.value.nluResult;
    }
    input.nlu = result;
    ctx.log.debug("NLU", { intent: result.intent, score: result.score, entities: result.entities.length });
    return true;
  }

  /** Loads the `script` connectors' modules again (SIGHUP). */
  async reload(): Promise<void> {
    await Promise.all([...this.#connectors.values()].map((c) => c.reload?.()));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#connectors.values()].map((c) => c.stop?.()));
  }

  /** A failed NLU call: `nlu` null, `nlu_error` said; whether the flow runs (`on_error`). */
  #failed(endpoint: EndpointSettings, input: FlowInput, reason: string, log: Logger): boolean {
    const said = scrub(reason, this.deps.config.secrets);
    input.nlu = null;
    input.nlu_error = said;
    const skip = endpoint.nlu.on_error === "skip_turn";
    const then = skip ? 'the flow does not run for this input (on_error = "skip_turn")' : "the flow runs with input.nlu = null";
    log.warn(`NLU failed; ${then}: ${maskMessage(said, endpoint.data_protection.mask_logging)}`);
    return !skip;
  }
}

/**
 * The language of the text the connector reads: the flow's when translation translated it; the
 * user's when translation failed (the text is still as the user wrote it) or is off.
 */
export function nluLanguage(input: FlowInput): string {
  const translation = input.data.translation as { flow_language?: unknown; user_language?: unknown; error?: unknown } | undefined;
  if (translation?.error !== undefined) return typeof translation.user_language === "string" ? translation.user_language : input.language;
  return typeof translation?.flow_language === "string" ? translation.flow_language : input.language;
}

/** The input's data without the raw Messenger event. */
function withoutRequest(input: FlowInput): Record<string, unknown> {
  const { request: _request, ...data } = input.data;
  return data;
}

/** A hook's `data` replaces the input's; the raw event stays, and so does the profile unless the hook's data sets it (as for handleInput). */
function replaceData(input: FlowInput, data: Record<string, unknown>): void {
  input.data = { request: input.data.request, ...(input.data.profile ? { profile: input.data.profile } : {}), ...data };
}

/** The `mid` of the Messenger message or postback, for Rasa's `message_id`. */
function messageIdOf(input: FlowInput): { messageId?: string } {
  const event = input.data.request as { message?: { mid?: unknown }; postback?: { mid?: unknown } } | undefined;
  const mid = event?.message?.mid ?? event?.postback?.mid;
  return typeof mid === "string" ? { messageId: mid } : {};
}

/** handlePostNlu's return: `nluResult` checked as a result, its `raw` the connector's unless it sets one. */
function postNluReturn(value: unknown, connectorOutput: unknown): Checked<{ data?: Record<string, unknown>; nluResult?: NluResult | null }> {
  const checked = checkValue(PostNluReturn, value);
  if (!checked.ok) return checked;
  const { data, nluResult } = checked.value;
  if (nluResult === undefined || nluResult === null) return { ok: true, value: { data, nluResult } };
  const raw = typeof nluResult === "object" && Object.hasOwn(nluResult, "raw") ? (nluResult as { raw: unknown }).raw : connectorOutput;
  const result = resultFromAnswer(nluResult, raw);
  if (!result.ok) return { ok: false, problem: `nluResult${result.problem.startsWith("/") ? "" : " "}${result.problem}` };
  return { ok: true, value: { data, nluResult: result.value } };
}
