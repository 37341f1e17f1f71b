/**
 * What a request names, found or refused: the endpoint of its path, the user on that endpoint.
 * The refusals are thrown (`HttpError`), and answered by the error plugin.
 */
import type { EndpointSettings } from "../config/schema.ts";
import type { UserKey } from "../core/user-key.ts";
import { HttpError } from "../http/errors.ts";
import type { UserData } from "../people/user-data.ts";

/** The settings' endpoints by id. */
export type Endpoints = ReadonlyMap<string, EndpointSettings>;

/** The endpoint of that id, or 404 unknown_endpoint. */
export function endpointNamed(endpoints: Endpoints, id: string): EndpointSettings {
  const endpoint = endpoints.get(id);
  if (!endpoint) throw new HttpError("unknown_endpoint", `no endpoint "${id}" in the settings`);
  return endpoint;
}

/**
 * The user's key on the endpoint: on `pageId` when given, else on the Page they wrote to last
 * (people/user-data.ts). 404 unknown_page for a Page that is not the endpoint's, unknown_user for a
 * PSID that never wrote to it.
 */
export async function userOn(userData: UserData, endpoint: EndpointSettings, userId: string, pageId?: string): Promise<UserKey> {
  if (pageId && !endpoint.pages.some((p) => p.id === pageId)) {
    throw new HttpError("unknown_page", `Page ${pageId} is not one of endpoint ${endpoint.id}'s pages`);
  }
  const page = await userData.pageOf(endpoint.id, userId, pageId);
  if (!page) throw new HttpError("unknown_user", `user ${userId} has never written to endpoint ${endpoint.id}${pageId ? ` on Page ${pageId}` : ""}`);
  return { endpointId: endpoint.id, pageId: page, userId };
}
