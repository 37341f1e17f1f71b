/**
 * Who has the floor in a user's thread (docs/handover.md), and changing it:
 *
 *   GET  /api/endpoints/{id}/users/{userId}/thread    bot, handover (another app owns it) or paused
 *   POST /api/endpoints/{id}/users/{userId}/thread    take, pass, pause, resume
 */
import { Elysia } from "elysia";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import type { Clock } from "../core/clock.ts";
import type { Ownership } from "../cluster/ownership.ts";
import type { EndpointSettings } from "../config/schema.ts";
import { noticeStatement } from "../conversations/notices.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { targetAppId, type CallFailure, type Threads } from "../handover/threads.ts";
import { HttpError } from "../http/errors.ts";
import { jsonResponse } from "../http/responses.ts";
import type { UserData } from "../people/user-data.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import type { AdminGuard } from "./guard.ts";
import { endpointNamed, userOn, type Endpoints } from "./lookup.ts";
import { answer, errorAnswer } from "./openapi.ts";
import { EndpointUserParams, ThreadBody, ThreadQuery, type ThreadBody as ThreadChange } from "./schemas.ts";

export interface ThreadRouteDeps {
  guard: AdminGuard;
  endpoints: Endpoints;
  userData: UserData;
  threads: Threads;
  replies: ReplyLanes;
  ownership: Ownership;
  writes: WriteQueue;
  clock: Clock;
}

export function threadRoutes({ guard, endpoints, userData, threads, replies, ownership, writes, clock }: ThreadRouteDeps) {
  const view = async (key: UserKey) => ({ ...(await threads.view(key)), waiting_messages: replies.waiting(key) });
  const conflict = (message: string) => new HttpError("conflict", message);
  /** Meta refused the handover call (502), or the Page is paused and nothing can be asked of Meta for it (503). */
  const refused = (failure: CallFailure) =>
    failure.status === 503 ? new HttpError("page_paused", failure.message) : new HttpError("graph_error", `Meta refused it: ${failure.message}`);

  return new Elysia({ name: "admin-thread" })
    .use(guard.plugin)
    .get(
      "/api/endpoints/:id/users/:userId/thread",
      async ({ params, query, requestId }) => {
        const key = await userOn(userData, endpointNamed(endpoints, params.id), params.userId, query.page_id);
        return jsonResponse(200, await view(key), requestId);
      },
      {
        params: EndpointUserParams,
        query: ThreadQuery,
        detail: {
          summary:
            "Who has the floor in the user's thread: bot, handover (another app owns it) or paused (a person answered), with the timeout and the last handover error",
          responses: { "200": answer("the thread") },
        },
      },
    )
    .post(
      "/api/endpoints/:id/users/:userId/thread",
      async ({ params, body, requestId, log }) => {
        const endpoint = endpointNamed(endpoints, params.id);
        const key = await userOn(userData, endpoint, params.userId, body.page_id);
        // With several instances another one may run this user (docs/scale-out.md): the thread is
        // read afresh here, changed, and its owner told to read it again (conversations/notices.ts).
        const elsewhere = !ownership.owns(key);
        const same = (k: UserKey) => userKeyId(k) === userKeyId(key);
        if (elsewhere) await threads.gained(same);
        try {
          await change(endpoint, key, body);
          log.info(`thread ${body.action} by the operator`, { endpoint: endpoint.id });
          return jsonResponse(200, await view(key), requestId);
        } finally {
          if (elsewhere) {
            threads.lost(same);
            await writes.run([noticeStatement("thread_changed", key, clock)]);
          }
        }
      },
      {
        params: EndpointUserParams,
        ...guard.jsonBody(ThreadBody),
        detail: {
          summary: "Change it: take (the bot has it again), pass (to people), pause, resume",
          responses: {
            "200": answer("the thread after the change"),
            "400": errorAnswer("invalid body"),
            "409": errorAnswer("not possible in the thread's state"),
            "502": errorAnswer("Meta refused the handover call"),
            "503": errorAnswer("the Page is paused (Meta refused its token)"),
          },
        },
      },
    );

  async function change(endpoint: EndpointSettings, key: UserKey, body: ThreadChange): Promise<void> {
    const handedOver = threads.floor(key) === "handover";
    switch (body.action) {
      case "take": {
        const failed = await threads.take(key, "operator");
        if (failed) throw refused(failed);
        return;
      }
      case "pass": {
        if (handedOver) throw conflict("another app owns the thread already; take it first");
        const failed = await threads.pass(key, targetAppId(body.target ?? endpoint.handover.target), body.metadata ?? null);
        if (failed) throw refused(failed);
        return;
      }
      case "pause":
        if (handedOver) throw conflict("another app owns the thread; the bot is silent already");
        await threads.pause(key, body.minutes ?? endpoint.handover.pause_minutes);
        return;
      case "resume":
        if (handedOver) throw conflict("another app owns the thread: use action take to have it back");
        await threads.returned(key, "resumed");
        return;
    }
  }
}
