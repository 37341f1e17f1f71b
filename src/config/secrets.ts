/**
 * Every secret value of the settings, for the logger and for scrubbing stored errors (log/scrub.ts).
 * Besides the secret keys this takes the password and credential-like query values of configured
 * URLs (flows' `url`, `storage.url`, `graph.url`; see log/scrub.ts `urlSecrets`): messages show
 * those URLs only in their display form, and these values are removed wherever else they turn up
 * (an agent's error page quoting its own key, say).
 */
import { urlSecrets } from "../log/scrub.ts";
import type { FlowSettings, Settings } from "./schema.ts";

export function collectSecrets(settings: Settings): string[] {
  const secrets = new Set<string>();
  const add = (s: string | undefined) => s && secrets.add(s);
  for (const key of settings.admin.api_keys) add(key);
  add(settings.storage.auth_token);
  for (const s of urlSecrets(settings.storage.url)) add(s);
  for (const s of urlSecrets(settings.graph.url)) add(s);
  for (const flow of Object.values(settings.flows)) {
    for (const s of flowSecrets(flow)) add(s);
    // An llm flow's tools: their keys and credential headers.
    for (const tool of flow.tools ?? []) for (const s of flowSecrets(tool)) add(s);
  }
  for (const endpoint of settings.endpoints) {
    add(endpoint.app_secret);
    add(endpoint.verify_token);
    for (const page of endpoint.pages) add(page.access_token);
    // The NLU connector and the translation provider: keys, credential headers, URL passwords.
    for (const s of flowSecrets(endpoint.nlu)) add(s);
    add(endpoint.translation.api_key);
    if (endpoint.translation.url) for (const s of urlSecrets(endpoint.translation.url)) add(s);
  }
  return [...secrets];
}

/** Header names whose values are credentials (`Authorization`, `X-Api-Key`, `X-Auth-Token` ...). */
const SECRET_HEADER = /authorization|token|key|secret/i;

/** A flow's secrets: its `api_key`, the values of headers that carry credentials, its URL's password and keys. */
export function flowSecrets(flow: Pick<FlowSettings, "api_key" | "headers" | "url">): string[] {
  const found: string[] = [];
  if (flow.api_key) found.push(flow.api_key);
  for (const [name, header] of Object.entries(flow.headers ?? {})) {
    if (SECRET_HEADER.test(name)) found.push(header, header.replace(/^(Bearer|Basic|Token)\s+/i, ""));
  }
  if (flow.url) found.push(...urlSecrets(flow.url));
  return found.filter((s) => s !== "");
}
