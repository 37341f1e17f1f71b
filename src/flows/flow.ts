/** A flow: the AI agent behind an endpoint. It gets one input and returns a result (docs/flows.md). */
import type { Logger } from "../log/logger.ts";
import type { FlowInput } from "./schema.ts";

export interface FlowContext {
  /** Aborted when the turn's time is up or the server stops. */
  signal: AbortSignal;
  log: Logger;
  /**
   * Reports tokens a model used for this turn (call it once per model answer; the calls add up).
   * The engine counts them in `messenger_llm_tokens_total{endpoint, flow, kind}` at once and, with
   * `collect_analytics`, sums them into the turn's commit (src/conversations/usage.ts). Given by
   * the engine for every turn; optional so that a flow can be run without it (tests).
   */
  usage?(tokens: TokenUsage): void;
}

/** Tokens of one model answer: the prompt's and the completion's (non-negative integers). */
export interface TokenUsage {
  prompt: number;
  completion: number;
}

export interface Flow {
  readonly name: string;
  readonly kind: "http" | "script" | "llm";
  /** How long one turn may take before it is abandoned. */
  readonly timeoutMs: number;
  /** Returns the raw result; the engine validates it against FlowResult. */
  run(input: FlowInput, ctx: FlowContext): Promise<unknown>;
}

/** A flow failed in a way the operator must see: timeout, non-2xx, invalid body, a thrown error. */
export class FlowError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FlowError";
  }
}
