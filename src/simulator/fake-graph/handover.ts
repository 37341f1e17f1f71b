/**
 * The handover protocol's edges: pass, take, request and release thread control, the thread owner
 * and the secondary receivers. With `threadOwnerError` set, an app that does not own the thread
 * is refused (sends and passes) with that error.
 */
import { charLength } from "../messenger-limits.ts";
import { PAGE_INBOX_APP_ID } from "../webhook-driver.ts";
import { NETWORK_ERROR, type Answers, type Outcome } from "./answers.ts";
import type { FakeDirectory } from "./directory.ts";
import type { ScriptedFailures } from "./failures.ts";
import { DEFAULT_MESSAGES, graphFail, invalid, scriptedFail } from "./graph-errors.ts";
import { isObject } from "./params.ts";
import { appIdOf, type FakeGraphOptions, type FakePage } from "./types.ts";

export class HandoverEdges {
  constructor(
    private readonly options: FakeGraphOptions,
    private readonly directory: FakeDirectory,
    private readonly failures: ScriptedFailures,
    private readonly answers: Answers,
  ) {}

  /** `POST /me/{pass,take,request,release}_thread_control`. */
  control(page: FakePage, edge: string, params: Record<string, unknown>): Outcome {
    const psid = recipientId(params);
    const failure = this.failures.take(page.id, params, edge);
    if (failure && "networkError" in failure) return NETWORK_ERROR;
    if (failure && "code" in failure) scriptedFail(failure);
    if (params.metadata !== undefined) {
      if (typeof params.metadata !== "string") invalid("param metadata must be a string");
      if (charLength(params.metadata) > 1000) invalid("Length of param metadata must be less than or equal to 1000");
    }
    const appId = appIdOf(page);
    const routingBlocked = page.conversationRouting && (edge === "take_thread_control" || edge === "request_thread_control");
    if (routingBlocked) invalid("Handover Protocol APIs disabled for this page.");
    switch (edge) {
      case "pass_thread_control": {
        const target = params.target_app_id;
        if ((typeof target !== "string" && typeof target !== "number") || String(target) === "") invalid("param target_app_id must be a valid app ID");
        // Only the owner (or anybody, when the thread is idle) passes.
        const owner = this.directory.threadOwner(page.id, psid);
        if (owner !== null && owner !== appId) this.notOwner();
        this.directory.setThreadOwner(page.id, psid, String(target));
        break;
      }
      case "take_thread_control":
        this.directory.setThreadOwner(page.id, psid, appId);
        break;
      case "release_thread_control":
        if (this.directory.threadOwner(page.id, psid) === appId) this.directory.setThreadOwner(page.id, psid, null);
        break;
      // request_thread_control: the owner decides; nothing changes here.
    }
    return this.answers.ok({ success: true });
  }

  /** `GET /me/thread_owner?recipient=`. */
  threadOwner(page: FakePage, params: Record<string, unknown>): Response {
    const recipient = params.recipient;
    if (typeof recipient !== "string" && typeof recipient !== "number") invalid("The parameter recipient is required");
    const owner = this.directory.threadOwner(page.id, String(recipient));
    return this.answers.ok({ data: owner === null ? [] : [{ thread_owner: { app_id: owner } }] });
  }

  /** `GET /me/secondary_receivers`: the Page Inbox. */
  secondaryReceivers(): Response {
    return this.answers.ok({ data: [{ id: PAGE_INBOX_APP_ID, name: "Page Inbox" }] });
  }

  /** With `threadOwnerError` set: the call of an app that does not own the thread fails with it. */
  notOwner(): void {
    const ownerError = this.options.threadOwnerError;
    if (!ownerError) return;
    graphFail(ownerError.code, ownerError.message ?? DEFAULT_MESSAGES[ownerError.code] ?? "(#10) The app is not the thread owner", {
      ...(ownerError.subcode === undefined ? {} : { subcode: ownerError.subcode }),
      ...(ownerError.status === undefined ? {} : { status: ownerError.status }),
    });
  }
}

function recipientId(params: Record<string, unknown>): string {
  const recipient = params.recipient;
  if (!isObject(recipient) || (typeof recipient.id !== "string" && typeof recipient.id !== "number") || String(recipient.id) === "") {
    invalid("param recipient[id] must be a non-empty string");
  }
  return String(recipient.id);
}
