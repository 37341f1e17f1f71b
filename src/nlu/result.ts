/**
 * What the NLU connector gives the flow (`input.nlu`, docs/nlu.md), and the one shape in which an
 * `http` service, a `script` module and a post-NLU hook answer: `{ intent, score?, entities?,
 * ranking? }`, checked here. Rasa's and the LLM's answers have their own shapes (rasa.ts, llm.ts)
 * and are mapped into the same result.
 */
import { Type, type Static } from "@sinclair/typebox";
import { checkValue, type Checked } from "../core/checks.ts";

export interface NluEntity {
  type: string;
  value: unknown;
  /** Where the value stands in the text the connector read: `text.slice(start, end)`. */
  start?: number;
  end?: number;
  /** The connector's confidence in this entity (0–1), when it says. */
  score?: number;
  /** Rasa: the pipeline component that found it. */
  extractor?: string;
}

export interface NluRanked {
  intent: string;
  score: number;
}

/** `input.nlu`. */
export interface NluResult {
  /** The intent, or null: none found, or scored below `min_score`. */
  intent: string | null;
  /** The top intent's score (0–1), also when `min_score` made the intent null. */
  score: number;
  entities: NluEntity[];
  /** Intents by score, best first, when the connector ranks them. */
  ranking?: NluRanked[];
  /** What the connector answered, as it answered it. */
  raw: unknown;
}

const Score = Type.Number({ minimum: 0, maximum: 1 });
const Name = Type.String({ minLength: 1, maxLength: 200 });
const Offset = Type.Integer({ minimum: 0 });
/** Any JSON value but null: a text, a number, a duckling-like object ... */
export const EntityValue = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Array(Type.Unknown()), Type.Record(Type.String(), Type.Unknown())]);

const Entity = Type.Object({
  type: Name,
  value: EntityValue,
  start: Type.Optional(Offset),
  end: Type.Optional(Offset),
  score: Type.Optional(Score),
  extractor: Type.Optional(Type.String({ maxLength: 200 })),
});

/** The answer of an `http` service or a `script`, and the `nluResult` of a post-NLU hook. Other properties are allowed (kept in `raw`). */
export const NluAnswer = Type.Object({
  intent: Type.Union([Name, Type.Null()]),
  /** Default: 1 with an intent, 0 without. */
  score: Type.Optional(Score),
  entities: Type.Optional(Type.Array(Entity, { maxItems: 100 })),
  ranking: Type.Optional(Type.Array(Type.Object({ intent: Name, score: Score }), { maxItems: 100 })),
  /** A post-NLU hook's `nluResult` may set it; else it is what the connector answered. */
  raw: Type.Optional(Type.Unknown()),
});
export type NluAnswer = Static<typeof NluAnswer>;

/** An answer in the common shape, checked and made into a result with this `raw`. */
export function resultFromAnswer(value: unknown, raw: unknown): Checked<NluResult> {
  const checked = checkValue(NluAnswer, value);
  if (!checked.ok) return checked;
  const a = checked.value;
  return {
    ok: true,
    value: {
      intent: a.intent,
      score: a.score ?? (a.intent === null ? 0 : 1),
      entities: (a.entities ?? []).map((e) => ({ ...e })),
      ...(a.ranking ? { ranking: a.ranking.map((r) => ({ intent: r.intent, score: r.score })) } : {}),
      raw,
    },
  };
}

/**
 * `min_score`: an intent scored below it becomes null; the ranking keeps it (one is made of the
 * intent alone when the connector gave none), so the flow can still see what it nearly was.
 */
export function applyMinScore(result: NluResult, minScore: number): NluResult {
  if (result.intent === null || result.score >= minScore) return result;
  const { intent, score } = result;
  const ranking = result.ranking ?? [];
  return {
    ...result,
    intent: null,
    ranking: ranking.some((r) => r.intent === intent) ? ranking : [{ intent, score }, ...ranking],
  };
}

/** A score a service gave, kept within 0–1 (a classifier's float can stray past 1 by a rounding). */
export function clampScore(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
}
