/**
 * People: their contacts, and the GDPR export and erasure of everything stored about them (by
 * contact, or by PSID — also when the endpoint keeps no contact profiles).
 *
 *   GET    /api/contacts?user_id=PSID[&endpoint_id=]        the contact(s) of a PSID
 *   GET    /api/contacts/{id}                                a contact
 *   GET    /api/contacts/{id}/export                         GDPR export
 *   DELETE /api/contacts/{id}                                GDPR erasure (erasure.ts)
 *   GET    /api/endpoints/{id}/users/{userId}/export         the same by PSID
 *   DELETE /api/endpoints/{id}/users/{userId}
 */
import { Elysia } from "elysia";
import { HttpError } from "../http/errors.ts";
import { jsonResponse } from "../http/responses.ts";
import { MASK } from "../log/mask.ts";
import type { ContactViews } from "../people/contact-views.ts";
import type { UserData } from "../people/user-data.ts";
import type { Erase } from "./erasure.ts";
import type { AdminGuard } from "./guard.ts";
import type { Endpoints } from "./lookup.ts";
import { answer, errorAnswer } from "./openapi.ts";
import { ContactParams, EndpointUserParams, UserQuery } from "./schemas.ts";

export interface ContactRouteDeps {
  guard: AdminGuard;
  endpoints: Endpoints;
  userData: UserData;
  contactViews: ContactViews;
  erase: Erase;
}

export function contactRoutes({ guard, endpoints, userData, contactViews, erase }: ContactRouteDeps) {
  const unknownContact = (id: string) => new HttpError("unknown_contact", `no contact ${id}`);
  const unknownUser = (endpointId: string, userId: string) => new HttpError("unknown_user", `endpoint ${endpointId} has nothing stored about user ${userId}`);
  /** Whether the endpoint's log lines hide who is meant. */
  const masks = (endpointId: string) => endpoints.get(endpointId)?.data_protection.mask_logging ?? false;

  return new Elysia({ name: "admin-contacts" })
    .use(guard.plugin)
    .get(
      "/api/contacts",
      async ({ query, requestId }) => {
        const found = await contactViews.contactsByUser(query.user_id, query.endpoint_id);
        if (found.length === 0) throw new HttpError("unknown_user", `no contact with user ${query.user_id}`);
        return jsonResponse(200, found.length === 1 ? found[0] : { contacts: found }, requestId);
      },
      {
        query: UserQuery,
        detail: {
          summary: "The contact of a PSID: profile fields, linked PSIDs per Page",
          responses: { "200": answer("the contact"), "400": errorAnswer("no user_id") },
        },
      },
    )
    .get(
      "/api/contacts/:id",
      async ({ params, requestId }) => {
        const contact = await contactViews.contact(params.id);
        if (!contact) throw unknownContact(params.id);
        return jsonResponse(200, contact, requestId);
      },
      { params: ContactParams, detail: { summary: "A contact", responses: { "200": answer("the contact") } } },
    )
    .get(
      "/api/contacts/:id/export",
      async ({ params, requestId }) => {
        const subject = await userData.subject({ contactId: params.id });
        if (!subject) throw unknownContact(params.id);
        return jsonResponse(200, await userData.export(subject), requestId);
      },
      { params: ContactParams, detail: { summary: "GDPR export: everything stored about the contact's PSIDs", responses: { "200": answer("the export") } } },
    )
    .delete(
      "/api/contacts/:id",
      async ({ params, requestId, log }) => {
        const subject = await userData.subject({ contactId: params.id });
        if (!subject) throw unknownContact(params.id);
        const rows = await erase(subject, log);
        log.info("contact erased with everything stored about its users", { contact_id: masks(subject.contact!.endpoint_id) ? MASK : params.id, rows });
        return jsonResponse(200, { erased: params.id, users: subject.keys.length, rows_deleted: rows }, requestId);
      },
      {
        params: ContactParams,
        ...guard.noBody,
        detail: {
          summary: "GDPR erasure: the contact and everything stored about its PSIDs (events, messages, sessions, transcripts)",
          responses: { "200": answer("erased") },
        },
      },
    )
    .get(
      "/api/endpoints/:id/users/:userId/export",
      async ({ params, requestId }) => {
        const subject = await userData.subject({ endpointId: params.id, userId: params.userId });
        if (!subject) throw unknownUser(params.id, params.userId);
        return jsonResponse(200, await userData.export(subject), requestId);
      },
      {
        params: EndpointUserParams,
        detail: { summary: "GDPR export by PSID (the whole contact when the PSID has one)", responses: { "200": answer("the export") } },
      },
    )
    .delete(
      "/api/endpoints/:id/users/:userId",
      async ({ params, requestId, log }) => {
        const subject = await userData.subject({ endpointId: params.id, userId: params.userId });
        if (!subject) throw unknownUser(params.id, params.userId);
        const rows = await erase(subject, log);
        log.info("user erased with everything stored about them", { endpoint: params.id, user: masks(params.id) ? MASK : params.userId, rows });
        return jsonResponse(200, { erased: params.userId, contact_id: subject.contact?.id ?? null, users: subject.keys.length, rows_deleted: rows }, requestId);
      },
      {
        params: EndpointUserParams,
        ...guard.noBody,
        detail: {
          summary: "GDPR erasure by PSID (the whole contact when the PSID has one); works with contact_profiles = false",
          responses: { "200": answer("erased") },
        },
      },
    );
}
