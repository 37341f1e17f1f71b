/**
 * The admin API (docs/admin-api.md), under `/api`: JSON in and out, described at `/api/openapi.json`
 * (served without a key: it holds no data). Every route takes `Authorization: Bearer <one of
 * [admin] api_keys>` (guard.ts); with no keys configured every `/api` path answers 404
 * admin_api_off. Requests are checked against the routes' schemas (schemas.ts) before a handler
 * runs; every refusal is thrown (`HttpError`) and answered by the app's error plugin
 * (http/error-plugin.ts), as `{ error, message }` with `x-request-id`.
 *
 * The routes, by what they are about:
 *
 *   users.ts           inject, notify (and from any body, through the transformers)
 *   thread.ts          who has the floor in a user's thread
 *   contacts.ts        contacts; GDPR export and erasure (erasure.ts)
 *   sessions.ts        sessions and their reset
 *   conversations.ts   transcripts
 *   endpoints.ts       the endpoints' status; applying the Messenger profile
 *   analytics.ts       counts per day
 *   reload.ts          the settings reload
 */
import { Elysia } from "elysia";
import type { Config } from "../config/load.ts";
import type { Clock } from "../core/clock.ts";
import type { ConversationEngine } from "../conversations/engine.ts";
import type { SessionStore } from "../conversations/sessions.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Threads } from "../handover/threads.ts";
import { HttpError } from "../http/errors.ts";
import { jsonResponse } from "../http/responses.ts";
import type { Inbox } from "../inbox/inbox.ts";
import type { Logger } from "../log/logger.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import type { MessengerProfiles } from "../messenger/profile.ts";
import type { Analytics } from "../people/analytics.ts";
import type { ContactViews } from "../people/contact-views.ts";
import type { Contacts } from "../people/contacts.ts";
import type { SessionViews } from "../people/session-views.ts";
import type { Transcripts } from "../people/transcripts.ts";
import type { UserData } from "../people/user-data.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import type { Transformers } from "../transformers/transformers.ts";
import { analyticsRoutes } from "./analytics.ts";
import { contactRoutes } from "./contacts.ts";
import { conversationRoutes } from "./conversations.ts";
import { endpointRoutes } from "./endpoints.ts";
import { erasure } from "./erasure.ts";
import { API_OFF_MESSAGE, adminGuard } from "./guard.ts";
import { openApiDocument } from "./openapi.ts";
import { InjectBody, NotifyBody, ThreadBody } from "./schemas.ts";
import { sessionRoutes } from "./sessions.ts";
import { threadRoutes } from "./thread.ts";
import { userRoutes } from "./users.ts";

import type { Ownership } from "../cluster/ownership.ts";
import type { Leases } from "../cluster/leases.ts";
import { clusterRoutes } from "./cluster.ts";
import type { LiveSettings, ReloadOutcome } from "../config/live.ts";
import { reloadRoutes } from "./reload.ts";
export interface AdminDeps {
  config: Config;
  /** The settings now: the admin keys and endpoints a reload changes. */
  live: LiveSettings;
  /** Reads the settings file again and applies it (app.ts). */
  reload: (log: Logger) => Promise<ReloadOutcome>;
  inbox: Inbox;
  engine: ConversationEngine;
  replies: ReplyLanes;
  sessions: SessionStore;
  contacts: Contacts;
  userData: UserData;
  contactViews: ContactViews;
  sessionViews: SessionViews;
  transcripts: Transcripts;
  analytics: Analytics;
  pages: PageDirectory;
  writes: WriteQueue;
  clock: Clock;
  log: Logger;
  transformers: Transformers;
  profiles: MessengerProfiles;
  threads: Threads;
  /** Who runs which users (cluster/): with several instances, a thread changed here is announced to its owner. */
  ownership: Ownership;
  /** The leases with `[cluster] enabled`, else null (GET /api/cluster). */
  leases: Leases | null;
}

export function adminRoutes(deps: AdminDeps) {
  const { config, live } = deps;
  const keys = () => live.current.admin.api_keys;
  const off = () => new HttpError("admin_api_off", API_OFF_MESSAGE);
  const guard = adminGuard({ keys, log: deps.log, maxBodyBytes: config.server.max_body_bytes });
  const shared = { ...deps, guard, endpoints: live.endpoints };

  const api = new Elysia({ name: "admin" })
    .use(userRoutes(shared))
    .use(threadRoutes(shared))
    .use(contactRoutes({ ...shared, erase: erasure(deps) }))
    .use(sessionRoutes(shared))
    .use(conversationRoutes(shared))
    .use(endpointRoutes(shared))
    .use(analyticsRoutes(shared))
    .use(clusterRoutes(shared))
    .use(reloadRoutes(shared));

  // Made from the routes above at the first request for it (the admin API's routes are all known by then).
  let document: Record<string, unknown> | undefined;
  return api
    .get(
      "/api/openapi.json",
      () => {
        if (keys().length === 0) throw off();
        document ??= openApiDocument(api.routes, { InjectBody, NotifyBody, ThreadBody });
        return jsonResponse(200, document);
      },
      { detail: { hide: true } },
    )
    .all(
      "/api/*",
      ({ request }) => {
        if (keys().length === 0) throw off();
        throw new HttpError("not_found", `no admin API route for ${request.method} ${new URL(request.url).pathname}; see /api/openapi.json`);
      },
      { detail: { hide: true } },
    );
}
