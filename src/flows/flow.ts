/** A flow: the AI agent behind an endpoint. It gets one input and returns a result (docs/flows.md). */
import type { Logger } from "../log/logger.ts";
import type { FlowInput } from "./schema.ts";

export interface FlowContext {
  /** Aborted when the turn's time is up or the server stops. */
  signal: AbortSignal;
  log: Logger;
  /** Tokens the flow's model used, reported as they are known (counted by the engine). */
  usage?(tokens: { prompt: number; completion: number }): void;
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
