/**
 * The fake's webhook POSTs to our server, signed like Meta's: the echo, delivery and read that
 * follow a send, the handover events, and whatever a test emits. They go out one at a time, in
 * order; a failed one (no answer, or not 200) is retried a few times, like Meta does, and then
 * given up (`onGiveUp`).
 */
import type { Clock } from "../../core/clock.ts";
import { deliverWebhook, delivery, echo, envelope, metaJson, read, type MessagingEvent } from "../webhook-driver.ts";
import { appIdOf, type FakeGraphOptions, type FakePage, type WebhookDelivery } from "./types.ts";

export class WebhookEmitter {
  /** Every webhook POST made (echoes, deliveries, reads, handover events), in order. */
  readonly deliveries: WebhookDelivery[] = [];
  #chain: Promise<void> = Promise.resolve();
  #stopped = false;
  /** Bumped by reset(): deliveries queued before it are abandoned. */
  #generation = 0;

  /** `options` is the fake's own (configure() changes it for the whole fake). */
  constructor(
    private readonly options: FakeGraphOptions,
    private readonly clock: Clock,
  ) {}

  /** Points the POSTs (echoes, deliveries, reads, handover events) at a server. */
  configure(webhook: FakeGraphOptions["webhook"], emit: { echoes?: boolean; deliveries?: boolean; reads?: boolean } = {}): void {
    this.options.webhook = webhook;
    if (emit.echoes !== undefined) this.options.echoes = emit.echoes;
    if (emit.deliveries !== undefined) this.options.deliveries = emit.deliveries;
    if (emit.reads !== undefined) this.options.reads = emit.reads;
  }

  /** Echo, delivery and read webhooks of a send, posted after the answer and in order. */
  afterSend(page: FakePage, psid: string, message: Record<string, any>, mid: string, sentAt: number): void {
    const o = this.options;
    if (!o.webhook) return;
    if (o.echoes) {
      const attachments = message.attachment ? [{ type: message.attachment.type, payload: message.attachment.payload }] : undefined;
      this.emit(page, [
        echo(page.id, psid, {
          appId: appIdOf(page),
          mid,
          timestamp: sentAt,
          ...(message.metadata !== undefined ? { metadata: message.metadata } : {}),
          ...(message.text !== undefined ? { text: message.text } : {}),
          ...(attachments ? { attachments } : {}),
          ...(message.quick_replies !== undefined ? { quickReplies: message.quick_replies } : {}),
        }),
      ]);
    }
    if (o.deliveries) this.emit(page, [delivery(page.id, psid, sentAt, [mid])]);
    if (o.reads) this.emit(page, [read(page.id, psid, sentAt, { timestamp: sentAt })]);
  }

  /** Queues a signed webhook POST of `items` for `page`; POSTs go out one at a time, in order. */
  emit(page: FakePage, items: MessagingEvent[], options: { standby?: boolean } = {}): void {
    const webhook = this.options.webhook;
    if (!webhook) return;
    const body = metaJson(envelope(page.id, items, { time: this.clock.now(), ...options }));
    const secret = webhook.appSecret ?? page.appSecret;
    const record: WebhookDelivery = { pageId: page.id, body, status: null };
    this.deliveries.push(record);
    const generation = this.#generation;
    this.#chain = this.#chain.then(async () => {
      // Like Meta: a failed delivery (no answer, or not 200) is retried a few times.
      const retries = webhook.retries ?? 6;
      for (let attempt = 0; attempt <= retries && !this.#stopped && generation === this.#generation; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** (attempt - 1)));
        try {
          const response = await deliverWebhook(page.webhookUrl ?? webhook.url, body, secret, { signal: AbortSignal.timeout(webhook.timeoutMs ?? 10_000) });
          await response.arrayBuffer();
          record.status = response.status;
          delete record.error;
          if (response.status === 200) return;
        } catch (error) {
          record.error = String((error as Error)?.message ?? error);
        }
      }
      if (!this.#stopped && generation === this.#generation) webhook.onGiveUp?.(record);
    });
  }

  /** Resolves when every POST queued so far has been answered (or failed). */
  async flush(): Promise<void> {
    let chain: Promise<void>;
    do {
      chain = this.#chain;
      await chain;
    } while (chain !== this.#chain);
  }

  /** What was posted is forgotten; what is queued is abandoned. */
  reset(): void {
    this.#generation++;
    this.deliveries.length = 0;
  }

  /** No more POSTs or retries; waits for the one in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.flush();
  }
}
