/**
 * A lane's "control" items: a flow's handover (`pass_thread_control`), made once everything queued
 * before it is sent, and recorded with the new state of the thread (handover/threads.ts) in one
 * commit. One handover at a time: those still queued when the thread leaves the bot are moot.
 */
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { Logger } from "../log/logger.ts";
import type { GraphClient } from "../messenger/graph.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import { passThreadControl, threadOwner } from "../messenger/thread-control.ts";
import type { Threads } from "../handover/threads.ts";
import type { OpenItems } from "./open-items.ts";
import type { ControlBody, OutboxItem } from "./outbox.ts";
import type { SendFailures } from "./failures.ts";
import type { Settled } from "./outcomes.ts";
import type { ReplyStore } from "./store.ts";

export interface ControlDeps {
  graph: GraphClient;
  pages: PageDirectory;
  clock: Clock;
  threads?: Threads | undefined;
  store: ReplyStore;
  items: OpenItems;
}

export class ControlItems {
  constructor(
    private readonly deps: ControlDeps,
    private readonly failures: SendFailures,
  ) {}

  /** A flow's handover, after everything before it was sent (the item is marked "sending"). */
  async pass(item: OutboxItem, key: UserKey, body: ControlBody, log: Logger, interrupted: boolean): Promise<Settled> {
    const page = this.deps.pages.credentials(key.endpointId, key.pageId)!;
    const threads = this.deps.threads;
    const startedAt = this.deps.clock.now(); // an erasure meanwhile keeps its state from being written back
    try {
      // A crash may have come after Meta passed the thread and before we recorded it: ask first.
      const done = (interrupted || item.maybeDone === true) && (await threadOwner(this.deps.graph, page, key.userId).catch(() => null)) === body.target_app_id;
      if (!done) await passThreadControl(this.deps.graph, page, key.userId, body.target_app_id, body.metadata);
    } catch (error) {
      return this.failures.failed(item, key, error, log);
    }
    // The floor changes before the item is closed (the lane's next look already holds), in one
    // commit with its "sent" mark: a restart never passes the thread a second time.
    const now = this.deps.clock.now();
    if (threads)
      await threads.handedOver(key, body.target_app_id, body.metadata, "passed", {
        byLane: true,
        extra: [this.deps.store.sentStatement(item.id, null, now)],
        startedAt,
      });
    else await this.deps.store.markSent(item.id, null, now);
    await this.supersede(key); // one handover at a time: those queued after it are moot
    return "settled";
  }

  /**
   * The thread left us otherwise (a person took it, a request was honoured, the operator passed
   * it): a handover still waiting in the lane is moot — made later, it would pass the thread away
   * again right after it came back. Dropped and recorded ("superseded").
   */
  async supersede(key: UserKey): Promise<void> {
    const moot = this.deps.items.removeWhere(key, (i) => i.kind === "control" && i.status === "pending");
    if (moot.length === 0) return;
    const error = JSON.stringify({ reason: "superseded: the thread left the bot otherwise first" });
    await this.deps.store.finish(moot.map((item) => ({ id: item.id, status: "dropped", error })));
  }

  /** A handover item given up: the flow is told (handover.status "error"), once. */
  async givenUp(item: OutboxItem, key: UserKey, error: unknown): Promise<void> {
    if (item.kind !== "control" || !this.deps.threads) return;
    if (!this.deps.items.of(key)?.includes(item)) return; // the user was erased meanwhile
    const body = JSON.parse(item.body) as ControlBody;
    await this.deps.threads.passFailed(key, body.target_app_id, body.metadata, error);
  }
}
