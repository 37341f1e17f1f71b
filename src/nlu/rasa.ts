/**
 * `kind = "rasa"`: a Rasa server started with `--enable-api`. `POST {url}/model/parse` with
 * `{ text, message_id }` (and `?token=<api_key>` when the server was started with `--auth-token`);
 * it answers `{ text, intent: { name, confidence }, entities: [{ entity, value, start, end,
 * confidence_entity, extractor, … }], intent_ranking: [{ name, confidence }] }`, mapped into the
 * result: the intent and its confidence, each entity as `{ type, value, start, end, score,
 * extractor }`, the ranking as `{ intent, score }`. Its errors come as `{ status: "failure",
 * reason, message, code }` (401 NotAuthenticated for a wrong token, 409 Conflict while no model is
 * loaded, 500 ParsingError): their message is quoted in `nlu_error`.
 */
import { Type } from "@sinclair/typebox";
import { checkValue } from "../core/checks.ts";
import { flowSecrets } from "../config/secrets.ts";
import type { NluSettings } from "../config/schema.ts";
import { displayUrl, scrub } from "../log/scrub.ts";
import { HttpAnswerError, NluFailure, postJson } from "./call.ts";
import type { Connector } from "./connector.ts";
import { EntityValue, clampScore, type NluEntity } from "./result.ts";

const Confidence = Type.Optional(Type.Union([Type.Number(), Type.Null()]));
const Offset = Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]));

/** What /model/parse answers (other properties, such as `response_selector`, are kept in `raw`). */
const RasaParse = Type.Object({
  intent: Type.Optional(Type.Union([Type.Object({ name: Type.Union([Type.String(), Type.Null()]), confidence: Confidence }), Type.Null()])),
  entities: Type.Optional(
    Type.Array(
      Type.Object({
        entity: Type.String({ minLength: 1, maxLength: 200 }),
        value: EntityValue,
        start: Offset,
        end: Offset,
        confidence_entity: Confidence,
        confidence: Confidence,
        extractor: Type.Optional(Type.Union([Type.String(), Type.Null()])),
      }),
      { maxItems: 100 },
    ),
  ),
  intent_ranking: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), confidence: Confidence }), { maxItems: 100 })),
});

/** `{url}/model/parse`, with `?token=` when a key is set (other query parameters of `url` stay). */
export function rasaParseUrl(base: string, token: string | undefined): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/model/parse`;
  if (token) url.searchParams.set("token", token);
  return url.href;
}

export function rasaConnector(settings: NluSettings, fetchImpl: typeof fetch = fetch): Connector {
  const url = rasaParseUrl(settings.url!, settings.api_key);
  // Shown without the token: the display form of the URL as configured.
  const what = `the Rasa server at ${displayUrl(rasaParseUrl(settings.url!, undefined))}`;
  const secrets = flowSecrets(settings);
  const headers = new Headers({ "content-type": "application/json", accept: "application/json", ...settings.headers });
  return {
    what,
    async parse(query, signal) {
      let answer: unknown;
      try {
        const body = query.messageId ? { text: query.text, message_id: query.messageId } : { text: query.text };
        answer = await postJson({ fetch: fetchImpl, url, what, headers, body, signal, secrets });
      } catch (error) {
        throw error instanceof HttpAnswerError ? rasaError(error, what, secrets) : error;
      }
      const checked = checkValue(RasaParse, answer);
      if (!checked.ok) throw new NluFailure(`${what} answered with an invalid parse result: ${checked.problem}`, "invalid_answer", false);
      const parsed = checked.value;
      const entities = (parsed.entities ?? []).map((e) => {
        const entity: NluEntity = { type: e.entity, value: e.value };
        if (typeof e.start === "number") entity.start = e.start;
        if (typeof e.end === "number") entity.end = e.end;
        const score = e.confidence_entity ?? e.confidence;
        if (typeof score === "number") entity.score = clampScore(score);
        if (typeof e.extractor === "string") entity.extractor = e.extractor;
        return entity;
      });
      const name = parsed.intent?.name ?? null;
      return {
        intent: name === "" ? null : name,
        score: name ? clampScore(parsed.intent?.confidence) : 0,
        entities,
        ...(parsed.intent_ranking ? { ranking: parsed.intent_ranking.map((r) => ({ intent: r.name, score: clampScore(r.confidence) })) } : {}),
        raw: answer,
      };
    },
  };
}

/** Rasa's error answer, said with its reason and message (`401 NotAuthenticated: User is not authenticated.`). */
function rasaError(error: HttpAnswerError, what: string, secrets: readonly string[]): HttpAnswerError {
  let said: { reason?: unknown; message?: unknown } = {};
  try {
    said = JSON.parse(error.body) ?? {};
  } catch {
    return error;
  }
  if (typeof said.reason !== "string" || typeof said.message !== "string") return error;
  const hint = error.status === 401 || error.status === 403 ? " (check api_key: the server's --auth-token)" : "";
  return new HttpAnswerError(
    `${what} answered HTTP ${error.status} ${said.reason}: ${scrub(said.message, secrets).slice(0, 200)}${hint}`,
    error.status,
    error.body,
  );
}
