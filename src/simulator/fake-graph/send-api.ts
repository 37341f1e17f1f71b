/**
 * The Send API (`POST /me/messages`) and attachment upload (`POST /me/message_attachments`): a
 * scripted failure first if one matches, then Graph's validation (messenger-limits.ts), the user's
 * state (unavailable, blocked, unknown with `strictRecipients`), the 24-hour window (7 days for
 * the HUMAN_AGENT tag) and the thread owner; a send that passes is recorded, answered, and followed
 * by its echo, delivery and read webhooks.
 */
import { randomBytes } from "node:crypto";
import type { Clock } from "../../core/clock.ts";
import { validateSendBody } from "../messenger-limits.ts";
import { NETWORK_ERROR, garbledResponse, type Answers, type Outcome } from "./answers.ts";
import type { FakeDirectory } from "./directory.ts";
import type { ScriptedFailures } from "./failures.ts";
import { DEFAULT_MESSAGES, GraphError, WINDOW_MESSAGE, graphFail, invalid, scriptedFail } from "./graph-errors.ts";
import type { HandoverEdges } from "./handover.ts";
import { isObject } from "./params.ts";
import type { Recorder } from "./recorder.ts";
import { appIdOf, type FakeGraphOptions, type FakePage, type RecordedCall, type RecordedSend } from "./types.ts";
import type { WebhookEmitter } from "./webhooks.ts";

const HOUR = 3_600_000;
const WINDOW_MS = 24 * HOUR;
const HUMAN_AGENT_WINDOW_MS = 7 * 24 * HOUR;

export interface SendApiDeps {
  options: FakeGraphOptions;
  directory: FakeDirectory;
  recorder: Recorder;
  failures: ScriptedFailures;
  webhooks: WebhookEmitter;
  handover: HandoverEdges;
  answers: Answers;
  clock: Clock;
}

export class SendApi {
  #attachments = new Map<string, Record<string, unknown>>();

  constructor(private readonly deps: SendApiDeps) {}

  async messages(page: FakePage, params: Record<string, unknown>, signal: AbortSignal, call: RecordedCall): Promise<Outcome> {
    const failure = this.deps.failures.take(page.id, params);
    if (failure) {
      if ("networkError" in failure) return NETWORK_ERROR;
      if ("garbled" in failure) {
        this.#send(page, params, call);
        return garbledResponse(failure.garbled);
      }
      if ("timeoutMs" in failure) {
        if (failure.deliver) {
          let answer: Response;
          try {
            answer = this.#send(page, params, call);
          } catch (error) {
            if (!(error instanceof GraphError)) throw error;
            answer = this.deps.answers.error(error.spec);
          }
          const how = await this.deps.failures.hold(failure.timeoutMs, signal);
          return how === "elapsed" ? answer : NETWORK_ERROR;
        }
        const how = await this.deps.failures.hold(failure.timeoutMs, signal);
        if (how !== "elapsed") return NETWORK_ERROR;
      } else {
        scriptedFail(failure);
      }
    }
    return this.#send(page, params, call);
  }

  uploadAttachment(params: Record<string, unknown>): Response {
    const message = isObject(params.message) ? params.message : undefined;
    const attachment = message && isObject(message.attachment) ? message.attachment : undefined;
    if (!attachment) invalid("param message[attachment] is required");
    if (!["image", "audio", "video", "file"].includes(String(attachment.type)))
      invalid("param message[attachment][type] must be one of {image, audio, video, file}");
    const payload = isObject(attachment.payload) ? attachment.payload : {};
    if (typeof payload.url !== "string" && params.filedata === undefined) invalid("param message[attachment][payload][url] is required");
    const id = String(1_000_000_000_000_000n + BigInt(randomBytes(6).readUIntBE(0, 6)));
    this.#attachments.set(id, attachment);
    return this.deps.answers.ok({ attachment_id: id });
  }

  /** Uploaded attachments are forgotten. */
  reset(): void {
    this.#attachments = new Map();
  }

  /** Validates, applies the user's state and the window, records the send and answers. */
  #send(page: FakePage, params: Record<string, unknown>, call: RecordedCall): Response {
    const { options, directory, recorder, answers } = this.deps;
    const verdict = validateSendBody(params, { requireMessagingType: options.requireMessagingType === true });
    if (!verdict.ok) graphFail(verdict.code, verdict.message, verdict.subcode === undefined ? {} : { subcode: verdict.subcode });
    if (page.scopes && !page.scopes.includes("pages_messaging")) graphFail(200, "(#200) Permissions error");

    const recipient = params.recipient as Record<string, unknown>;
    const psid = recipient.id === undefined ? undefined : String(recipient.id);
    const user = psid === undefined ? undefined : directory.user(page.id, psid);
    if (psid !== undefined && !user && options.strictRecipients) invalid("No matching user found", 2018001);
    if (user?.unavailable) graphFail(551, "(#551) This person isn't available right now.", { subcode: 1545041 });
    if (user?.blockedCode2) graphFail(2, DEFAULT_MESSAGES[2]!, { status: user.blockedStatus ?? 400 });

    const now = this.deps.clock.now();
    if (user?.lastInboundAt !== undefined && now - user.lastInboundAt > WINDOW_MS) {
      const tagged = params.messaging_type === "MESSAGE_TAG" && typeof params.tag === "string";
      const allowed = tagged && (params.tag !== "HUMAN_AGENT" || now - user.lastInboundAt <= HUMAN_AGENT_WINDOW_MS);
      if (!allowed) graphFail(10, WINDOW_MESSAGE, { subcode: 2018278 });
    }
    if (psid !== undefined && directory.threadOwner(page.id, psid) !== appIdOf(page)) this.deps.handover.notOwner();

    const recipientId = psid ?? String(Object.values(recipient)[0]);
    const send: RecordedSend = { seq: call.seq, at: performance.now(), pageId: page.id, recipientId, type: params.sender_action ? "action" : "message" };
    if (params.sender_action) {
      send.senderAction = String(params.sender_action);
      recorder.sent(send);
      return answers.ok(psid === undefined ? {} : { recipient_id: psid });
    }
    const message = params.message as Record<string, any>;
    const messageId = `m_${randomBytes(30).toString("base64url")}`;
    Object.assign(send, { message, messageId });
    if (typeof params.messaging_type === "string") send.messagingType = params.messaging_type;
    if (typeof params.tag === "string") send.tag = params.tag;
    if (typeof message.metadata === "string") send.metadata = message.metadata;
    recorder.sent(send);
    if (psid !== undefined) this.deps.webhooks.afterSend(page, psid, message, messageId, now);
    const withRecipient = psid !== undefined || (recipient.user_ref === undefined && recipient.phone_number === undefined);
    return answers.ok(withRecipient && psid !== undefined ? { recipient_id: psid, message_id: messageId } : { message_id: messageId });
  }
}
