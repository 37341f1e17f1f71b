/**
 * The tokens a flow reports during a turn (FlowContext `usage`, src/flows/flow.ts): counted in
 * `messenger_llm_tokens_total{endpoint, flow, kind}` as soon as they are reported, and summed for
 * the turn's commit, which adds them to the day's count of the endpoint and flow
 * (people/analytics.ts, with `collect_analytics`). A turn that fails still commits, so its tokens
 * are kept too; what a flow reports after its turn was committed (a flow that ignores its time
 * limit) is only counted in the metric.
 */
import type { InStatement } from "@libsql/client";
import type { TokenUsage } from "../flows/flow.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter, Registry } from "../metrics/registry.ts";
import { tokensStatement } from "../people/analytics.ts";

/** The metric's name and help, the same wherever it is registered (the registry keeps the first). */
export const TOKENS_METRIC = "messenger_llm_tokens_total";
export const TOKENS_HELP = "Tokens the llm flows' models reported, by endpoint, flow and kind (prompt, completion).";

/** The engine's side of FlowContext `usage`: one TurnUsage per turn. */
export class TokenCounts {
  readonly #tokens: Counter;

  constructor(metrics: Registry) {
    this.#tokens = metrics.counter(TOKENS_METRIC, TOKENS_HELP);
  }

  /** What a turn of this flow for this endpoint reports to. */
  turn(endpointId: string, flow: string, log: Logger): TurnUsage {
    return new TurnUsage(this.#tokens, endpointId, flow, log);
  }
}

export class TurnUsage {
  #prompt = 0;
  #completion = 0;

  constructor(
    private readonly tokens: Counter,
    readonly endpointId: string,
    readonly flow: string,
    private readonly log: Logger,
  ) {}

  /** FlowContext `usage` (an arrow function: a flow may pass it on). Each call adds up. */
  readonly report = (tokens: TokenUsage): void => {
    const prompt = tokenCount(tokens?.prompt);
    const completion = tokenCount(tokens?.completion);
    if (prompt === null || completion === null) {
      this.log.warn(
        `flow ${this.flow} reported token usage that is not { prompt, completion } with two non-negative numbers; it was not counted. ` +
          "Call ctx.usage({ prompt: <prompt tokens>, completion: <completion tokens> }) once per model answer",
        { usage: describe(tokens) },
      );
      return;
    }
    const labels = { endpoint: this.endpointId, flow: this.flow };
    this.tokens.inc({ ...labels, kind: "prompt" }, prompt);
    this.tokens.inc({ ...labels, kind: "completion" }, completion);
    this.#prompt += prompt;
    this.#completion += completion;
  };

  /** The tokens reported so far in this turn. */
  get total(): TokenUsage {
    return { prompt: this.#prompt, completion: this.#completion };
  }

  /** The statement that adds the turn's tokens to the day's analytics; null when none were reported. */
  statement(now: number): InStatement | null {
    if (this.#prompt === 0 && this.#completion === 0) return null;
    return tokensStatement(this.endpointId, this.flow, now, this.total);
  }
}

/** A count of tokens: a non-negative finite number, rounded to a whole one; null for anything else. */
function tokenCount(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.round(value) : null;
}

/** What was reported, for the log: its JSON, cut short. */
function describe(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
