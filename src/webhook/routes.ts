/**
 * `GET /webhooks/{endpoint}`: Facebook's verification handshake.
 * `POST /webhooks/{endpoint}`: events. Order of checks: endpoint known (404) → size (413) →
 * signature over the raw bytes (401) → endpoint enabled (200, ignored) → envelope (400) → store
 * every event of a known Page durably → 200. Processing happens after the answer. Within an
 * envelope nothing is refused: what cannot be understood is stored as malformed or ignored
 * (events.ts), and only a failure to store answers 5xx.
 */
import { Elysia } from "elysia";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import type { Clock } from "../core/clock.ts";
import { textResponse } from "../http/responses.ts";
import { errorResponse } from "../http/errors.ts";
import { parseWebhookBody } from "./events.ts";
import type { InboxEvent } from "../inbox/events.ts";
import type { Inbox } from "../inbox/inbox.ts";
import { verifySignature } from "./signature.ts";
import { nextRequestId } from "../http/request-id.ts";
import { sameSecret } from "../http/secrets.ts";
import { isStorageError } from "../db/health.ts";
import type { TurnTimings } from "../metrics/turn-timings.ts";

export interface WebhookDeps {
  config: Config;
  inbox: Inbox;
  log: Logger;
  metrics: Registry;
  clock: Clock;
  /** The endpoints now (a settings reload adds and removes them: config/live.ts); by default those of `config`. */
  endpoints?: ReadonlyMap<string, EndpointSettings>;
  /** Each step of a turn (metrics/turn-timings.ts). */
  timings?: TurnTimings;
}

const MAX_CHALLENGE_LENGTH = 1024;

export function webhookRoutes({ config, inbox, log, metrics, clock, endpoints: current, timings }: WebhookDeps) {
  const live = current ?? new Map(config.endpoints.map((e) => [e.id, e]));
  // Each settings object's Page ids, made at its first request: an endpoint's settings are replaced, never changed.
  const pageIds = new WeakMap<EndpointSettings, ReadonlySet<string>>();
  const endpoints = {
    get(id: string): { settings: EndpointSettings; pages: ReadonlySet<string> } | undefined {
      const settings = live.get(id);
      if (!settings) return undefined;
      let pages = pageIds.get(settings);
      if (!pages) pageIds.set(settings, (pages = new Set(settings.pages.map((p) => p.id))));
      return { settings, pages };
    },
  };
  const maxBody = config.server.max_body_bytes;
  // Bounded: forged Page ids must not grow it without end.
  const unknownPagesLogged = new Set<string>();
  const MAX_UNKNOWN_PAGES_LOGGED = 1000;

  const requests = metrics.counter("messenger_webhook_requests_total", "Webhook requests by endpoint and outcome.");
  const eventsCounter = metrics.counter(
    "messenger_webhook_events_total",
    "Webhook events by endpoint, kind and result (stored, duplicate, unknown_page, malformed, ignored_entry).",
  );
  const ackSeconds = metrics.histogram("messenger_webhook_ack_seconds", "Time from request start to the webhook's answer.");

  return new Elysia({ name: "webhook" })
    .get("/webhooks/:endpointId", ({ params, request }) => {
      const requestId = nextRequestId();
      const endpoint = endpoints.get(params.endpointId);
      if (!endpoint) return unknownEndpoint(params.endpointId, requestId);
      const query = new URL(request.url).searchParams;
      const mode = query.get("hub.mode");
      const token = query.get("hub.verify_token");
      const challenge = query.get("hub.challenge");
      const ok =
        mode === "subscribe" &&
        token !== null &&
        challenge !== null &&
        challenge.length <= MAX_CHALLENGE_LENGTH &&
        sameSecret(token, endpoint.settings.verify_token);
      const l = log.child({ endpoint: endpoint.settings.id, request_id: requestId });
      if (!ok) {
        l.warn(`webhook verification failed on endpoint ${endpoint.settings.id}: check that the App's Verify Token equals verify_token`, {
          mode,
        });
        return errorResponse("verification_failed", "verification failed: the verify token does not match", requestId);
      }
      l.info("webhook verified by Facebook");
      return textResponse(200, challenge, requestId);
    })
    .post(
      "/webhooks/:endpointId",
      async ({ params, request }) => {
        const started = performance.now();
        const requestId = nextRequestId();
        const endpoint = endpoints.get(params.endpointId);
        if (!endpoint) return unknownEndpoint(params.endpointId, requestId);
        const id = endpoint.settings.id;
        const l = log.child({ endpoint: id, request_id: requestId });
        const done = (response: Response, outcome: string) => {
          requests.inc({ endpoint: id, outcome });
          ackSeconds.observe({ endpoint: id }, (performance.now() - started) / 1000);
          return response;
        };

        const body = await readBody(request, maxBody);
        if (body === null) {
          l.warn(`webhook body over server.max_body_bytes (${maxBody}) on endpoint ${id}: raise the limit if Facebook sends larger batches`);
          return done(errorResponse("too_large", `the body is larger than ${maxBody} bytes`, requestId), "too_large");
        }
        if (!signatureOk(endpoint.settings, body, request.headers.get("x-hub-signature-256"))) {
          l.warn(`signature mismatch on endpoint ${id}: check app_secret (it must be the secret of the App whose webhook this is)`);
          return done(errorResponse("signature_mismatch", "X-Hub-Signature-256 is missing or does not match the body", requestId), "bad_signature");
        }
        const timing = timings?.request(started);
        timing?.verified();
        if (!endpoint.settings.enabled) {
          l.debug("endpoint disabled: event acknowledged and ignored");
          return done(textResponse(200, "EVENT_RECEIVED", requestId), "disabled");
        }

        const parsed = parseWebhookBody(body, clock.now());
        if (parsed.type === "invalid") {
          l.warn(`rejected webhook body on endpoint ${id}: ${parsed.reason}`);
          return done(errorResponse("invalid_body", parsed.reason, requestId), "invalid");
        }
        if (parsed.type === "ignored") {
          l.info(`ignored webhook on endpoint ${id}: ${parsed.reason}`);
          return done(textResponse(200, "EVENT_RECEIVED", requestId), "ignored");
        }

        const events: InboxEvent[] = [];
        for (const entry of parsed.entries) {
          if (endpoint.pages.has(entry.pageId)) {
            events.push(...entry.events);
            continue;
          }
          eventsCounter.inc({ endpoint: id, kind: "any", result: "unknown_page" }, entry.events.length);
          const key = `${id}:${entry.pageId}`;
          if (!unknownPagesLogged.has(key) && unknownPagesLogged.size < MAX_UNKNOWN_PAGES_LOGGED) {
            unknownPagesLogged.add(key);
            l.warn(`events for Page ${entry.pageId} ignored: it is not listed in the pages of endpoint ${id}; add it there to serve it`, {
              page: entry.pageId,
            });
          }
        }
        if (parsed.skipped.length > 0) {
          // One line per POST, not per item: a batch of junk must not flood the log.
          const { skipped } = parsed;
          eventsCounter.inc({ endpoint: id, kind: "any", result: "malformed" }, skipped.length);
          const more = skipped.length > 1 ? ` (and ${skipped.length - 1} more)` : "";
          l.warn(`a webhook item does not have Messenger's shape; stored as "malformed" for inspection, not processed: ${skipped[0]!.reason}${more}`, {
            page: skipped[0]!.pageId,
            malformed: skipped.length,
            reasons: [...new Set(skipped.map((s) => s.reason))].slice(0, 5),
          });
        }
        if (parsed.ignoredEntries.length > 0) {
          const { ignoredEntries: ignored } = parsed;
          eventsCounter.inc({ endpoint: id, kind: "any", result: "ignored_entry" }, ignored.length);
          const more = ignored.length > 1 ? ` (and ${ignored.length - 1} more)` : "";
          l.warn(
            `a webhook entry has no usable Page id; nothing of it was stored, the rest of the batch was: entry ${ignored[0]!.index}: ${ignored[0]!.reason}${more}`,
            {
              ignored_entries: ignored.length,
            },
          );
        }

        try {
          const result = await inbox.store(id, events, { early: true, timing });
          for (const e of result.stored) eventsCounter.inc({ endpoint: id, kind: e.kind, result: "stored" });
          if (result.duplicates > 0) eventsCounter.inc({ endpoint: id, kind: "any", result: "duplicate" }, result.duplicates);
          if (l.enabled("debug")) l.debug("webhook stored", { stored: result.stored.length, duplicates: result.duplicates });
        } catch (error) {
          // Not stored, so not acknowledged: Facebook retries. A failing storage (503) is logged by
          // db/health.ts at a bounded rate; a line per webhook would only fill it further.
          const unavailable = isStorageError(error);
          if (unavailable) l.debug(`could not store webhook events on endpoint ${id}; Facebook will retry`, { error });
          else l.error(`could not store webhook events on endpoint ${id}; Facebook will retry`, { error });
          const code = unavailable ? "storage_unavailable" : "storage_failed";
          return done(errorResponse(code, "the events could not be stored; retry later", requestId), "storage_failed");
        }
        return done(textResponse(200, "EVENT_RECEIVED", requestId), "stored");
      },
      { parse: "none" },
    );

  function unknownEndpoint(endpointId: string, requestId: string): Response {
    log.warn("webhook for an unknown endpoint", { endpoint: endpointId.slice(0, 64), request_id: requestId });
    return errorResponse("unknown_endpoint", "no such endpoint: check the callback URL in the App's webhook settings", requestId);
  }
}

function signatureOk(endpoint: EndpointSettings, body: Uint8Array, header: string | null): boolean {
  return endpoint.app_secret === undefined || verifySignature(endpoint.app_secret, body, header);
}

/** The raw body, or null when it is larger than `limit` bytes (read no further than that). */
async function readBody(request: Request, limit: number): Promise<Uint8Array | null> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit) return null;
  if (!request.body) return new Uint8Array(0);
  if (Number.isFinite(declared)) {
    const bytes = new Uint8Array(await request.arrayBuffer());
    return bytes.byteLength > limit ? null : bytes;
  }
  // Chunked upload: count as we go. Bun's server may stop the stream itself at its own limit.
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > limit) return null;
      chunks.push(chunk);
    }
  } catch (error) {
    if (/maxRequestBodySize|too large/i.test((error as Error)?.message ?? "")) return null;
    throw error;
  }
  return Buffer.concat(chunks);
}
