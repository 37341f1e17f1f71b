/**
 * `kind = "http"`: your own NLU service. POST `{ text, language, user_id, endpoint_id, session_id,
 * data }` to `url` (`Authorization: Bearer <api_key>` when set, and the extra `headers`); it answers
 * `{ intent, score?, entities?, ranking? }` (result.ts `NluAnswer`), which becomes `input.nlu` with
 * the whole answer as `raw`. `data` goes without the person's Facebook profile: a service that
 * classifies text has no need of a name or a picture.
 */
import { flowSecrets } from "../config/secrets.ts";
import type { NluSettings } from "../config/schema.ts";
import { displayUrl } from "../log/scrub.ts";
import { NluFailure, postJson } from "./call.ts";
import type { Connector } from "./connector.ts";
import { resultFromAnswer } from "./result.ts";

export function httpConnector(settings: NluSettings, fetchImpl: typeof fetch = fetch): Connector {
  const url = settings.url!;
  const what = `the NLU service at ${displayUrl(url)}`;
  const secrets = flowSecrets(settings);
  const headers = new Headers({ "content-type": "application/json", accept: "application/json", ...settings.headers });
  if (settings.api_key) headers.set("authorization", `Bearer ${settings.api_key}`);
  return {
    what,
    async parse(query, signal) {
      const { profile: _profile, ...data } = query.data;
      const body = {
        text: query.text,
        language: query.language,
        user_id: query.userId,
        endpoint_id: query.endpointId,
        session_id: query.sessionId,
        data,
      };
      const answer = await postJson({ fetch: fetchImpl, url, what, headers, body, signal, secrets });
      const result = resultFromAnswer(answer, answer);
      if (!result.ok) throw new NluFailure(`${what} answered with an invalid result: ${result.problem}`, "invalid_answer", false);
      return result.value;
    },
  };
}
