/**
 * The handover protocol's events (pass, take and request of thread control) applied to the
 * thread's state (handover/threads.ts). Each is applied when it is stored, not behind a turn that
 * may be running: a person taking the thread must stop the bot's queued messages at once. Its
 * place in the user's inbound lane comes later, in order; there it is only applied if that did
 * not happen (stored before this start, or it failed: in the lane a failure is retried).
 */
import type { EndpointSettings } from "../config/schema.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import type { HandoverOutcome, Threads } from "../handover/threads.ts";
import type { Logger } from "../log/logger.ts";
import type { EventKind } from "../inbox/events.ts";

/** A handover event as both places see it. */
export interface ControlEvent {
  /** The inbox row. */
  id: number;
  kind: EventKind;
  standby: boolean;
  timestamp: number;
  item: Record<string, unknown>;
}

/** The handover events applied when they were stored, by inbox row, until their lane step comes. */
export class AppliedControlEvents {
  readonly #byRow = new Map<number, { user: string; applied: Promise<boolean> }>();

  constructor(private readonly threads: Threads | undefined) {}

  /** The event was stored: applied now. */
  onArrival(endpoint: EndpointSettings, key: UserKey, event: ControlEvent, log: Logger): void {
    const applied = applyControl(this.threads, endpoint, key, event, log).then(
      () => true,
      (error) => {
        log.error("could not apply a handover event; it is applied again in the user's lane", { error });
        return false;
      },
    );
    this.#byRow.set(event.id, { user: userKeyId(key), applied });
  }

  /** The event's turn in the user's lane: applied unless that happened on arrival. */
  async inLane(endpoint: EndpointSettings, key: UserKey, event: ControlEvent, log: Logger): Promise<void> {
    const early = this.#byRow.get(event.id);
    try {
      if (!(early && (await early.applied))) await applyControl(this.threads, endpoint, key, event, log);
    } finally {
      // Also when it fails: a retry applies it again anyway, and an event set aside must not stay here.
      this.#byRow.delete(event.id);
    }
  }

  /** The person was erased: their events will not come to their lane. */
  forgetUser(key: UserKey): void {
    const user = userKeyId(key);
    for (const [id, early] of this.#byRow) if (early.user === user) this.#byRow.delete(id);
  }
}

/**
 * Applies a handover event to the thread's state: a pass to us returns it — the flow's
 * `handover.status = "completed"` turn is stored first, as an inbox event placed at the pass's
 * time in the user's lane (once, whatever is applied twice) — a take or a pass to another app
 * hands it over, a request is honoured (`honour_requests`) by passing at once; what is queued
 * for the user is then held.
 */
export async function applyControl(threads: Threads | undefined, endpoint: EndpointSettings, key: UserKey, event: ControlEvent, log: Logger): Promise<void> {
  if (!threads) return;
  const { kind, standby, timestamp: at } = event;
  const item = event.item as Record<string, any>;
  const ours = (appId: string | null) => (endpoint.app_id ? appId === endpoint.app_id : null);
  if (kind === "pass_thread_control") {
    const body = item.pass_thread_control ?? {};
    const newOwner = appIdOf(body.new_owner_app_id);
    // Without app_id in the settings: a pass that reaches us in messaging[] (not standby) is to us.
    if (ours(newOwner) ?? !standby) {
      await threads.returned(key, "returned", at, async (previous) => {
        if (previous.state !== "handover") return; // a pause, say: nothing to tell the flow
        const outcome: HandoverOutcome = {
          status: "completed",
          metadata: metadataOf(body) ?? previous.metadata,
          owner_app_id: previous.ownerAppId ?? appIdOf(body.previous_owner_app_id),
          since: new Date(previous.since).toISOString(),
        };
        await threads.storeOutcome(key, outcome, `pass:${at}`, at, item);
      });
      return;
    }
    if (newOwner) await threads.handedOver(key, newOwner, metadataOf(body), "taken_by_other", { at });
  } else if (kind === "take_thread_control") {
    const body = item.take_thread_control ?? {};
    const newOwner = appIdOf(body.new_owner_app_id);
    if (!ours(newOwner)) await threads.handedOver(key, newOwner, metadataOf(body), "taken_by_other", { at });
  } else if (kind === "request_thread_control") {
    const body = item.request_thread_control ?? {};
    const requested = appIdOf(body.requested_owner_app_id);
    if (!requested || ours(requested)) {
      // nothing to pass
    } else if (!endpoint.handover.honour_requests) {
      log.info(`app ${requested} asked for the thread; not passed (handover.honour_requests is off)`);
    } else if (threads.floor(key) === "handover") {
      log.info(`app ${requested} asked for the thread, which another app owns already`);
    } else {
      await threads.pass(key, requested, metadataOf(body));
    }
  }
}

/** An app id of a handover event (checked by webhook/events.ts: digits, or a number); empty is none. */
function appIdOf(value: unknown): string | null {
  return value === null || value === undefined || value === "" ? null : String(value);
}

function metadataOf(body: Record<string, unknown>): string | null {
  return typeof body.metadata === "string" ? body.metadata : null;
}
