/** What every NLU connector (http.ts, rasa.ts, llm.ts, script.ts) does: one try at understanding one text. */
import type { NluResult } from "./result.ts";

/** What a connector is asked about: the text and what comes with it. */
export interface NluQuery {
  text: string;
  /** The language of `text` (the flow's language when real-time translation translated it). */
  language: string;
  /** The input's data, without the raw Messenger event. */
  data: Record<string, unknown>;
  userId: string;
  endpointId: string;
  sessionId: string;
  /** The Messenger message id (`mid`), when the input has one. */
  messageId?: string;
}

export interface Connector {
  /** What is called, for messages: "the Rasa server at http://rasa:5005/model/parse". */
  readonly what: string;
  /** The connector keeps its own time limit (a script's worker): the call arms none. */
  readonly ownTimeLimit?: boolean;
  /** One try; rejects with an NluFailure (call.ts). */
  parse(query: NluQuery, signal: AbortSignal): Promise<NluResult>;
  /** Loads the operator's module again (a script). */
  reload?(): Promise<void>;
  stop?(): Promise<void>;
}
