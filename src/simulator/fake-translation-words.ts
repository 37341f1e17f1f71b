/**
 * The stand-in translator of the fake providers (fake-translation.ts): a few hundred words of
 * German, French and Spanish against English, translated word by word (through English between
 * two others), and a detector that counts each language's common words. Enough for tests and
 * for a demo to show a conversation going both ways; not a translator.
 */

/** English word → [German, French, Spanish]. */
const WORDS: Record<string, [string, string, string]> = {
  hello: ["hallo", "bonjour", "hola"],
  hi: ["hallo", "salut", "hola"],
  yes: ["ja", "oui", "sí"],
  no: ["nein", "non", "no"],
  thanks: ["danke", "merci", "gracias"],
  please: ["bitte", "svp", "porfavor"],
  i: ["ich", "je", "yo"],
  you: ["du", "vous", "tú"],
  we: ["wir", "nous", "nosotros"],
  my: ["meine", "mon", "mi"],
  your: ["deine", "votre", "tu"],
  need: ["brauche", "besoin", "necesito"],
  want: ["möchte", "veux", "quiero"],
  help: ["hilfe", "aide", "ayuda"],
  order: ["bestellung", "commande", "pedido"],
  where: ["wo", "où", "dónde"],
  how: ["wie", "comment", "cómo"],
  what: ["was", "quoi", "qué"],
  is: ["ist", "est", "es"],
  are: ["sind", "sont", "son"],
  the: ["die", "le", "el"],
  a: ["ein", "un", "un"],
  and: ["und", "et", "y"],
  with: ["mit", "avec", "con"],
  for: ["für", "pour", "para"],
  from: ["von", "de", "de"],
  of: ["von", "de", "de"],
  to: ["zu", "à", "a"],
  not: ["nicht", "pas", "nada"],
  good: ["gut", "bon", "bueno"],
  morning: ["morgen", "matin", "mañana"],
  day: ["tag", "jour", "día"],
  welcome: ["willkommen", "bienvenue", "bienvenido"],
  can: ["kann", "peux", "puedo"],
  buy: ["kaufen", "acheter", "comprar"],
  coffee: ["kaffee", "café", "café"],
  tea: ["tee", "thé", "té"],
  large: ["groß", "grand", "grande"],
  small: ["klein", "petit", "pequeño"],
  one: ["eins", "une", "uno"],
  today: ["heute", "aujourdhui", "hoy"],
  shop: ["laden", "boutique", "tienda"],
  price: ["preis", "prix", "precio"],
  time: ["zeit", "temps", "tiempo"],
  friend: ["freund", "ami", "amigo"],
  water: ["wasser", "eau", "agua"],
  again: ["nochmal", "encore", "otra"],
  more: ["mehr", "plus", "más"],
  anything: ["etwas", "rien", "algo"],
  else: ["sonst", "autre", "más"],
  coming: ["kommt", "arrive", "viene"],
  up: ["gleich", "bientôt", "ya"],
  bye: ["tschüss", "adieu", "adiós"],
  wrote: ["schrieb", "écrit", "escribió"],
  turn: ["runde", "tour", "turno"],
};

/** Common words that tell a language apart (besides the dictionary's). */
const COMMON: Record<string, string[]> = {
  en: ["i", "and", "the", "is", "are", "not", "with", "hello", "thanks", "yes", "where", "you", "my", "need", "help", "please", "what", "how"],
  de: ["ich", "und", "der", "die", "das", "ist", "nicht", "mit", "wie", "wo", "bitte", "danke", "hallo", "ja", "nein", "brauche", "meine", "hilfe"],
  fr: ["je", "et", "le", "la", "les", "est", "pas", "avec", "bonjour", "merci", "oui", "non", "où", "vous", "besoin", "aide", "mon", "une"],
  es: ["yo", "y", "el", "la", "los", "es", "con", "hola", "gracias", "sí", "dónde", "por", "que", "necesito", "ayuda", "mi", "pedido", "quiero"],
};

export const FAKE_LANGUAGES = ["en", "de", "fr", "es"] as const;
const COLUMN: Record<string, number> = { de: 0, fr: 1, es: 2 };

/** Foreign word → English, per language (the first English word that has it). */
const TO_ENGLISH: Record<string, Map<string, string>> = Object.fromEntries(
  Object.keys(COLUMN).map((lang) => {
    const map = new Map<string, string>();
    for (const [english, words] of Object.entries(WORDS)) if (!map.has(words[COLUMN[lang]!]!)) map.set(words[COLUMN[lang]!]!, english);
    return [lang, map];
  }),
);

const base = (tag: string) => tag.toLowerCase().split(/[-_]/)[0]!;

/** The language of a text by its common words (`en` when nothing tells). */
export function detectLanguage(text: string): { language: string; confidence: number } {
  const words = text.toLowerCase().match(/\p{L}+/gu) ?? [];
  let best = { language: "en", hits: 0 };
  for (const lang of FAKE_LANGUAGES) {
    const known = new Set([...COMMON[lang]!, ...(lang === "en" ? Object.keys(WORDS) : TO_ENGLISH[lang]!.keys())]);
    const hits = words.filter((w) => known.has(w)).length;
    if (hits > best.hits) best = { language: lang, hits };
  }
  return { language: best.language, confidence: words.length === 0 ? 0 : Math.round((100 * best.hits) / words.length) };
}

/** One word from `from` into `to` (through English), in the word's case; an unknown word stays. */
function translateWord(word: string, from: string, to: string): string {
  const lower = word.toLowerCase();
  const english = from === "en" ? (WORDS[lower] ? lower : undefined) : TO_ENGLISH[from]?.get(lower);
  if (english === undefined) return word;
  const target = to === "en" ? english : WORDS[english]?.[COLUMN[to]!];
  if (target === undefined) return word;
  if (word === word.toUpperCase() && word.length > 1) return target.toUpperCase();
  return word[0] === word[0]!.toUpperCase() ? target[0]!.toUpperCase() + target.slice(1) : target;
}

/** Plain text from `from` into `to`, word by word (`from` null: detected). */
export function translateText(text: string, from: string | null, to: string): { text: string; detected: string } {
  const source = from ? base(from) : detectLanguage(text).language;
  const target = base(to);
  if (source === target) return { text, detected: source };
  return { text: text.replace(/\p{L}+/gu, (w) => translateWord(w, source, target)), detected: source };
}

/**
 * HTML (a provider's html mode): the text between tags translated, entities left alone, and
 * nothing inside an element marked `translate="no"` or `class="notranslate"`.
 */
export function translateHtml(html: string, from: string | null, to: string): { text: string; detected: string } {
  const plain = html.replace(/<span\b[^>]*(?:translate="no"|notranslate)[^>]*>[\s\S]*?<\/span>/gi, " ").replace(/<[^>]+>|&#?\w+;/g, " ");
  const source = from ? base(from) : detectLanguage(plain).language;
  const target = base(to);
  if (source === target) return { text: html, detected: source };
  const pieces = html.split(/(<span\b[^>]*(?:translate="no"|notranslate)[^>]*>[\s\S]*?<\/span>|<[^>]+>|&#?\w+;)/gi);
  const text = pieces.map((piece, i) => (i % 2 === 1 ? piece : piece.replace(/\p{L}+/gu, (w) => translateWord(w, source, target)))).join("");
  return { text, detected: source };
}
