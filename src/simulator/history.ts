/**
 * A page's event stream begins with the conversation so far (`{type: "history"}`), read from the
 * transcript (`collect_conversations`: without it there is none), then goes on live — and shows
 * every message once. The events that arrive while the history is read wait for it; a reply is in
 * the history if it was sent when the history was read, and live only if it was not.
 */
import type { SimulatorEvent } from "./simulator.ts";
import type { HistoryLine, StoredHistory } from "./store.ts";

/** The transcript lines a page is sent at most (the latest). */
export const HISTORY_LINES = 200;

/** What the page is told first. `kept: false`: the endpoint keeps no transcripts. */
export interface HistoryEvent {
  type: "history";
  kept: boolean;
  lines: HistoryLine[];
  /** Set when the history could not be read: what went wrong (the page shows it). */
  error?: string;
}

/** The outbox id in a sent message's `metadata` stamp, `me:<install>:<outbox id>` (src/replies/outbox.ts, stampFor). */
function outboxIdOf(event: SimulatorEvent): number | null {
  if (event.type !== "message") return null;
  const match = /^me:[^:]+:(\d+)$/.exec(String(event.message.metadata ?? ""));
  return match ? Number(match[1]) : null;
}

/**
 * Subscribes with `subscribe` at once (nothing is missed), reads the history with `read` (null:
 * not kept), pushes it, then the events that came meanwhile and the rest as they come — without
 * the replies the history holds already. Returns the unsubscribe.
 */
export function followWithHistory(
  subscribe: (push: (event: SimulatorEvent) => void) => () => void,
  read: () => Promise<StoredHistory | null>,
  push: (event: SimulatorEvent | HistoryEvent) => void,
): () => void {
  let waiting: SimulatorEvent[] | null = [];
  let shown = (_event: SimulatorEvent) => true;
  const unsubscribe = subscribe((event) => {
    if (waiting) waiting.push(event);
    else if (shown(event)) push(event);
  });
  const start = async (): Promise<HistoryEvent> => {
    const stored = await read();
    if (!stored) return { type: "history", kept: false, lines: [] };
    const open = new Set(stored.open);
    // The replies still to be sent come live: their transcript lines (the last ones out) are left out.
    let skip = open.size;
    const lines: HistoryLine[] = [];
    for (let i = stored.lines.length - 1; i >= 0; i--) {
      const line = stored.lines[i]!;
      if (line.direction === "out" && skip > 0) skip--;
      else lines.unshift(line);
    }
    shown = (event) => {
      const id = outboxIdOf(event);
      return id === null || open.has(id) || id > stored.last;
    };
    return { type: "history", kept: true, lines };
  };
  start()
    .catch((error: unknown) => ({ type: "history" as const, kept: true, lines: [], error: `the conversation so far could not be read: ${String(error)}` }))
    .then((history) => {
      push(history);
      const meanwhile = waiting ?? [];
      waiting = null;
      for (const event of meanwhile) if (shown(event)) push(event);
    });
  return unsubscribe;
}
