/**
 * The people on the other side, as the fake plays them: the user writing to the Page, and a
 * person in the Page Inbox (an app of its own, PAGE_INBOX_APP_ID) replying, taking the
 * conversation, asking for it, or marking it Done. Each becomes the webhook events Meta would
 * send: in `messaging[]` while our app owns the thread, in `standby[]` while another app does.
 */
import type { Clock } from "../../core/clock.ts";
import { PAGE_INBOX_APP_ID, echo, passThreadControl, requestThreadControl, takeThreadControl, textMessage, type MessagingEvent } from "../webhook-driver.ts";
import type { FakeDirectory } from "./directory.ts";
import { isObject } from "./params.ts";
import { appIdOf } from "./types.ts";
import type { WebhookEmitter } from "./webhooks.ts";

export class Actors {
  constructor(
    private readonly directory: FakeDirectory,
    private readonly webhooks: WebhookEmitter,
    private readonly clock: Clock,
  ) {}

  /** The user writes a text to the Page. Opens the 24-hour window. */
  userMessage(pageId: string, psid: string, text: string): MessagingEvent {
    return this.userEvent(pageId, psid, textMessage(pageId, psid, text, { timestamp: this.clock.now() }));
  }

  /** Any event from the user (a message, a quick reply, a postback), routed like `userMessage`. */
  userEvent(pageId: string, psid: string, event: MessagingEvent): MessagingEvent {
    const page = this.directory.page(pageId);
    this.directory.userMessaged(pageId, psid);
    const standby = !this.directory.ownedByPageApp(page, psid);
    // An app that does not own the thread gets a postback without its payload.
    const item = standby && isObject(event.postback) ? { ...event, postback: { ...event.postback, payload: undefined } } : event;
    this.webhooks.emit(page, [item], { standby });
    return event;
  }

  /** A person answers in the Page Inbox: the echo (app 263902037430900), in standby[] unless our app owns the thread. */
  inboxReply(pageId: string, psid: string, text: string): MessagingEvent {
    const page = this.directory.page(pageId);
    const event = echo(pageId, psid, { appId: PAGE_INBOX_APP_ID, text, timestamp: this.clock.now() });
    this.webhooks.emit(page, [event], { standby: !this.directory.ownedByPageApp(page, psid) });
    return event;
  }

  /** A person takes the conversation in the Page Inbox: the Inbox owns the thread, our app (the previous owner) gets `take_thread_control`. */
  inboxTake(pageId: string, psid: string, metadata?: string): void {
    const page = this.directory.page(pageId);
    const previous = this.directory.threadOwner(pageId, psid);
    this.directory.setThreadOwner(pageId, psid, PAGE_INBOX_APP_ID);
    if (previous === appIdOf(page)) {
      this.webhooks.emit(page, [takeThreadControl(pageId, psid, previous, metadata, { newOwnerAppId: PAGE_INBOX_APP_ID, timestamp: this.clock.now() })]);
    }
  }

  /** The Page Inbox asks our app (the owner) for the thread: `request_thread_control`; nothing changes until we pass. */
  inboxRequest(pageId: string, psid: string, metadata?: string): void {
    const page = this.directory.page(pageId);
    this.webhooks.emit(page, [requestThreadControl(pageId, psid, PAGE_INBOX_APP_ID, metadata, { timestamp: this.clock.now() })]);
  }

  /** A person marks the conversation "Done" in the Page Inbox: control returns to the Page's app, which gets `pass_thread_control`. */
  inboxDone(pageId: string, psid: string, metadata?: string): void {
    const page = this.directory.page(pageId);
    const previous = this.directory.threadOwner(pageId, psid);
    this.directory.setThreadOwner(pageId, psid, appIdOf(page));
    this.webhooks.emit(page, [
      passThreadControl(pageId, psid, appIdOf(page), metadata, { previousOwnerAppId: previous ?? PAGE_INBOX_APP_ID, timestamp: this.clock.now() }),
    ]);
  }
}
