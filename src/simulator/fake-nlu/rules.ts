/**
 * The fake NLU's understanding (fake-nlu.ts): rules, not a model. An intent is found when one of
 * its example phrases stands in the text as whole words (case and punctuation aside); the score
 * grows with how much of the text the phrase covers (0.98 for the whole text, down to 0.5), so
 * "hi" scores higher than "hi, can you tell me where my order is". Entities are regular
 * expressions. Deterministic: the same text always gets the same answer.
 */

export interface IntentRule {
  intent: string;
  /** Phrases that say it: "where is my order", "track my order". */
  examples: string[];
}

export interface EntityRule {
  type: string;
  pattern: RegExp;
}

export interface Understood {
  intent: string | null;
  score: number;
  /** Every intent that matched, best first. */
  ranking: { intent: string; score: number }[];
  entities: { type: string; value: string; start: number; end: number }[];
}

/** A small shop's intents, in a few languages, for the demo and the tests. */
export const DEMO_INTENTS: IntentRule[] = [
  { intent: "greet", examples: ["hello", "hi", "hey", "good morning", "hallo", "guten tag", "bonjour", "hola"] },
  { intent: "order_status", examples: ["where is my order", "order status", "track my order", "my order", "wo ist meine bestellung", "ma commande"] },
  { intent: "cancel_order", examples: ["cancel", "cancel my order", "stornieren", "annuler"] },
  { intent: "refund", examples: ["refund", "money back", "geld zurück", "rembourser"] },
  { intent: "human", examples: ["human", "agent", "a person", "talk to someone", "mensch", "conseiller"] },
  { intent: "thanks", examples: ["thanks", "thank you", "danke", "merci", "gracias"] },
  { intent: "goodbye", examples: ["bye", "goodbye", "see you", "tschüss", "au revoir", "adios"] },
];

export const DEMO_ENTITIES: EntityRule[] = [
  { type: "order_id", pattern: /\b\d{5,10}\b/g },
  { type: "email", pattern: /[\w.+-]+@[\w-]+(?:\.[\w-]+)+/g },
];

/** Lower case, punctuation gone, single spaces: the words of a text. */
function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]+/gu, " ")
    .split(/\s+/)
    .filter((w) => w !== "");
}

/** Whether `phrase` stands in `text` as whole words, in order. */
function contains(text: string[], phrase: string[]): boolean {
  if (phrase.length === 0 || phrase.length > text.length) return false;
  for (let i = 0; i + phrase.length <= text.length; i++) if (phrase.every((w, j) => text[i + j] === w)) return true;
  return false;
}

export function understand(text: string, intents: IntentRule[], entityRules: EntityRule[]): Understood {
  const said = words(text);
  const ranking: Understood["ranking"] = [];
  for (const rule of intents) {
    let best = 0;
    for (const example of rule.examples) {
      const phrase = words(example);
      if (!contains(said, phrase)) continue;
      const score = phrase.length === said.length ? 0.98 : 0.5 + 0.45 * (phrase.length / said.length);
      best = Math.max(best, Math.round(score * 1000) / 1000);
    }
    if (best > 0) ranking.push({ intent: rule.intent, score: best });
  }
  ranking.sort((a, b) => b.score - a.score || a.intent.localeCompare(b.intent));
  const entities: Understood["entities"] = [];
  for (const rule of entityRules) {
    const pattern = new RegExp(rule.pattern.source, rule.pattern.flags.includes("g") ? rule.pattern.flags : `${rule.pattern.flags}g`);
    for (const match of text.matchAll(pattern)) entities.push({ type: rule.type, value: match[0], start: match.index, end: match.index + match[0].length });
  }
  entities.sort((a, b) => a.start - b.start);
  return { intent: ranking[0]?.intent ?? null, score: ranking[0]?.score ?? 0, ranking, entities };
}
