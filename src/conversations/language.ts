/**
 * What a turn asks about language, between the input transformer and the flow, and between the
 * flow and the reply lane. The turn (turn.ts) owns these interfaces; src/translation/ and src/nlu/
 * implement them, and app.ts hands the implementations in. Neither may throw: a failure of a
 * provider never loses a message (docs/translation.md, docs/nlu.md).
 */
import type { EndpointSettings } from "../config/schema.ts";
import type { UserKey } from "../core/user-key.ts";
import type { FlowInput } from "../flows/schema.ts";
import type { Logger } from "../log/logger.ts";

export interface TurnContext {
  log: Logger;
  /** The input came as a payload (a button, a quick reply, a postback), not as typed text. */
  isPayload: boolean;
  /** Aborted when the server stops. */
  signal: AbortSignal;
}

/** Real-time translation (docs/translation.md). */
export interface TurnTranslation {
  /**
   * The user's text into the flow's language: sets `input.text`, `input.language` and
   * `input.data.translation` ({ user_language, flow_language, original_text, error? }).
   */
  toFlow(endpoint: EndpointSettings, key: UserKey, input: FlowInput, ctx: TurnContext): Promise<void>;
  /** What the user will read, back into their language (the messages as the reply lane sends them). */
  toUser(endpoint: EndpointSettings, key: UserKey, input: FlowInput, messages: Record<string, unknown>[], ctx: TurnContext): Promise<Record<string, unknown>[]>;
}

/** The NLU connector (docs/nlu.md). */
export interface TurnUnderstanding {
  /**
   * Sets `input.nlu` (or null and `input.nlu_error`). Resolves false when the flow must not run
   * for this input (`on_error = "skip_turn"` after a failure), true otherwise.
   */
  understand(endpoint: EndpointSettings, key: UserKey, input: FlowInput, ctx: TurnContext): Promise<boolean>;
}
