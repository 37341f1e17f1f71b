/**
 * `kind = "llm"`: any OpenAI-compatible chat completions API (`POST {url}/chat/completions`,
 * `Authorization: Bearer <api_key>`) as a classifier. The system message lists the operator's
 * `intents` (with their descriptions) and `entities` and asks for one JSON object `{ intent,
 * score, entities: [{ type, value }] }`; the user message is the text. The answer is asked for
 * with `response_format` `json_schema` (strict, the intents as an enum). A server that refuses
 * it (a 400 or 422 naming `response_format` or the schema) is asked again at once with
 * `json_object`, and one that refuses that too with the instructions alone; the connector keeps
 * to the step that worked from then on. The model's answer is checked: not JSON, not the shape,
 * or an intent outside the declared ones is a failed call; entities of undeclared types are
 * dropped, and those found in the text get their `start` and `end`.
 */
import { Type } from "@sinclair/typebox";
import { checkValue } from "../core/checks.ts";
import { flowSecrets } from "../config/secrets.ts";
import type { NluSettings } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { displayUrl } from "../log/scrub.ts";
import { HttpAnswerError, NluFailure, postJson } from "./call.ts";
import type { Connector, NluQuery } from "./connector.ts";
import type { NluEntity } from "./result.ts";

/** How the JSON answer is asked for, from the strictest down. */
export type JsonMode = "json_schema" | "json_object" | "instructions";
const NEXT_MODE: Record<JsonMode, JsonMode | null> = { json_schema: "json_object", json_object: "instructions", instructions: null };

/** A refusal of what we asked for in `response_format` (rather than of the request as a whole). */
const REFUSED_FORMAT = /response_format|json_schema|json_object|structured output|schema/i;

interface Label {
  name: string;
  description?: string;
}

const Completion = Type.Object({
  choices: Type.Array(
    Type.Object({
      message: Type.Object({
        content: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        refusal: Type.Optional(Type.Union([Type.String(), Type.Null()])),
      }),
    }),
    { minItems: 1 },
  ),
});

/** The model's answer, checked; the intent is checked against the declared ones afterwards. */
const ModelAnswer = Type.Object({
  intent: Type.Union([Type.String(), Type.Null()]),
  score: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  entities: Type.Optional(
    Type.Array(Type.Object({ type: Type.String(), value: Type.Union([Type.String(), Type.Number(), Type.Boolean()]) }), { maxItems: 100 }),
  ),
});

export interface LlmConnector extends Connector {
  /** How the JSON answer is asked for now. */
  readonly mode: JsonMode;
}

export function llmConnector(settings: NluSettings, fetchImpl: typeof fetch = fetch, log?: Logger): LlmConnector {
  const url = `${settings.url!.replace(/\/+$/, "")}/chat/completions`;
  const what = `the LLM at ${displayUrl(url)}`;
  const secrets = flowSecrets(settings);
  const headers = new Headers({ "content-type": "application/json", accept: "application/json" });
  if (settings.api_key) headers.set("authorization", `Bearer ${settings.api_key}`);
  const intents = settings.intents.map(label);
  const entityTypes = settings.entities.map(label);
  const intentNames = new Set(intents.map((i) => i.name));
  const typeNames = new Set(entityTypes.map((e) => e.name));
  const schema = answerSchema(intents, entityTypes);
  let mode: JsonMode = "json_schema";

  const request = (query: NluQuery, asked: JsonMode) => ({
    model: settings.model,
    temperature: 0,
    messages: [
      { role: "system", content: instructions(intents, entityTypes, query.language) },
      { role: "user", content: query.text },
    ],
    ...(asked === "json_schema"
      ? { response_format: { type: "json_schema", json_schema: { name: "nlu_result", strict: true, schema } } }
      : asked === "json_object"
        ? { response_format: { type: "json_object" } }
        : {}),
  });

  return {
    what,
    get mode() {
      return mode;
    },
    async parse(query, signal) {
      let completion: unknown;
      for (let asked = mode; ; ) {
        try {
          completion = await postJson({ fetch: fetchImpl, url, what, headers, body: request(query, asked), signal, secrets });
          break;
        } catch (error) {
          const next = NEXT_MODE[asked];
          const refused = error instanceof HttpAnswerError && (error.status === 400 || error.status === 422) && REFUSED_FORMAT.test(error.body);
          if (!refused || !next) throw error;
          log?.info(
            `${what} refused response_format ${asked === "json_schema" ? "json_schema" : "json_object"}; asking ${next === "instructions" ? "with the instructions alone" : `with ${next}`} from now on`,
          );
          mode = asked = next;
        }
      }
      const checked = checkValue(Completion, completion);
      if (!checked.ok) throw new NluFailure(`${what} answered without choices[0].message: ${checked.problem}`, "invalid_answer", false);
      const message = checked.value.choices[0]!.message;
      if (typeof message.content !== "string") {
        const refusal = typeof message.refusal === "string" ? `: ${message.refusal.slice(0, 200)}` : "";
        throw new NluFailure(`${what} answered without content${refusal}`, "invalid_answer", false);
      }
      const json = jsonIn(message.content);
      if (json === undefined) throw new NluFailure(`the model's answer is not JSON: ${JSON.stringify(message.content.slice(0, 200))}`, "invalid_answer", false);
      const answer = checkValue(ModelAnswer, json);
      if (!answer.ok) throw new NluFailure(`the model's answer is not a result: ${answer.problem}`, "invalid_answer", false);
      const { intent, score, entities = [] } = answer.value;
      if (intent !== null && !intentNames.has(intent))
        throw new NluFailure(`the model answered an intent that is not declared: ${JSON.stringify(intent.slice(0, 100))}`, "invalid_answer", false);
      return {
        intent,
        score: score ?? (intent === null ? 0 : 1),
        entities: entities.filter((e) => typeNames.has(e.type)).map((e) => located(query.text, e)),
        raw: json,
      };
    },
  };
}

function label(value: NluSettings["intents"][number]): Label {
  return typeof value === "string" ? { name: value } : value;
}

/** The system message: the intents, the entity types, the answer's shape. */
export function instructions(intents: Label[], entityTypes: Label[], language: string): string {
  const line = (l: Label) => `- ${l.name}${l.description ? `: ${l.description}` : ""}`;
  return [
    `You classify one message that a user wrote to a chatbot (language: ${language}).`,
    'Answer with one JSON object and nothing else: {"intent": <one of the intents below, or null when none fits>, "score": <your confidence from 0 to 1>, "entities": [{"type": <one of the entity types below>, "value": <the entity as written in the message>}]}',
    "Intents:",
    ...intents.map(line),
    ...(entityTypes.length > 0 ? ["Entity types:", ...entityTypes.map(line)] : ['There are no entity types: answer "entities": [].']),
  ].join("\n");
}

/** The JSON schema of the answer for `response_format` (strict: every property required, no others). */
export function answerSchema(intents: Label[], entityTypes: Label[]): Record<string, unknown> {
  const type = entityTypes.length > 0 ? { type: "string", enum: entityTypes.map((e) => e.name) } : { type: "string" };
  return {
    type: "object",
    additionalProperties: false,
    required: ["intent", "score", "entities"],
    properties: {
      intent: { anyOf: [{ type: "string", enum: intents.map((i) => i.name) }, { type: "null" }] },
      score: { type: "number" },
      entities: {
        type: "array",
        items: { type: "object", additionalProperties: false, required: ["type", "value"], properties: { type, value: { type: "string" } } },
      },
    },
  };
}

/** The JSON object in a model's answer: all of it, or the part in a code fence or between the outer braces. */
function jsonIn(content: string): unknown {
  const tries = [content, /```(?:json)?\s*([\s\S]*?)```/i.exec(content)?.[1], content.slice(content.indexOf("{"), content.lastIndexOf("}") + 1)];
  for (const text of tries) {
    if (!text?.trim()) continue;
    try {
      return JSON.parse(text);
    } catch {
      // the next way of reading it
    }
  }
  return undefined;
}

/** An entity with where its value stands in the text, when it stands there (as written, or in another case). */
function located(text: string, entity: { type: string; value: string | number | boolean }): NluEntity {
  const value = String(entity.value);
  let start = text.indexOf(value);
  if (start < 0 && text.toLowerCase().length === text.length) start = text.toLowerCase().indexOf(value.toLowerCase());
  return start >= 0 && value !== "" ? { type: entity.type, value: entity.value, start, end: start + value.length } : { type: entity.type, value: entity.value };
}
