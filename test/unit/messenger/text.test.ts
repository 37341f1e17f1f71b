import { describe, expect, test } from "bun:test";
import { splitText } from "../../../src/messenger/text.ts";
import { cp, hasLoneSurrogate, seeded, type Random } from "./random.ts";

describe("splitText: short texts", () => {
  test("a text within the limit is one chunk, trimmed", () => {
    expect(splitText("  hello world \n", 2000)).toEqual(["hello world"]);
    expect(splitText("exactly10!", 10)).toEqual(["exactly10!"]);
  });

  test("empty and whitespace-only texts give no chunks", () => {
    expect(splitText("", 10)).toEqual([]);
    expect(splitText(" \n\t \n", 10)).toEqual([]);
  });

  test("the limit counts code points, not UTF-16 units", () => {
    // 10 emoji are 20 UTF-16 units but 10 characters for Messenger.
    const ten = "😀".repeat(10);
    expect(splitText(ten, 10)).toEqual([ten]);
  });
});

describe("splitText: where it cuts", () => {
  test("at the end of a sentence rather than at a later space", () => {
    const text = "The first sentence ends here. Then a second one that is long";
    // Limit 40: the sentence end (29) wins over the last space before 40.
    expect(splitText(text, 40)).toEqual(["The first sentence ends here.", "Then a second one that is long"]);
  });

  test("a sentence end followed by a closing quote or bracket is kept together", () => {
    expect(splitText('He said "stop now." Then he left the room', 25)).toEqual(['He said "stop now."', "Then he left the room"]);
    expect(splitText("It works (mostly.) And the rest follows", 22)).toEqual(["It works (mostly.)", "And the rest follows"]);
  });

  test("?, ! and … end sentences too", () => {
    expect(splitText("Are you there? I am waiting here", 20)).toEqual(["Are you there?", "I am waiting here"]);
    expect(splitText("Well… maybe tomorrow then", 14)).toEqual(["Well…", "maybe tomorrow", "then"]);
  });

  test("a dot inside a word (a URL, a number) is not a sentence end", () => {
    const chunks = splitText("see example.com/page and version 1.2.3 of it", 25);
    for (const c of chunks) expect(c).not.toMatch(/^(com|2\.3|3)/);
    expect(chunks.join(" ")).toBe("see example.com/page and version 1.2.3 of it");
  });

  test("at a line break rather than at a later space", () => {
    expect(splitText("first line\nsecond line is longer", 24)).toEqual(["first line", "second line is longer"]);
  });

  test("at the last space when there is no sentence end or line break", () => {
    expect(splitText("alpha beta gamma delta epsilon", 16)).toEqual(["alpha beta gamma", "delta epsilon"]);
  });

  test("a space right after the last allowed character counts", () => {
    expect(splitText("abcde fghij", 5)).toEqual(["abcde", "fghij"]);
  });

  test("with preferParagraphs, at a paragraph break even when a later sentence end fits", () => {
    const text = "First paragraph here.\n\nSecond paragraph. It goes on and on";
    expect(splitText(text, 45)).toEqual(["First paragraph here.\n\nSecond paragraph.", "It goes on and on"]);
    expect(splitText(text, 45, { preferParagraphs: true })).toEqual(["First paragraph here.", "Second paragraph. It goes on and on"]);
  });

  test("a paragraph break with spaces or tabs on the blank line is still one", () => {
    const text = "One para here.\n \t\nTwo para. Three four five";
    expect(splitText(text, 30, { preferParagraphs: true })).toEqual(["One para here.", "Two para. Three four five"]);
  });

  test("without preferParagraphs a paragraph break is still a line break", () => {
    expect(splitText("no sentence end here\n\nnext part of it", 30)).toEqual(["no sentence end here", "next part of it"]);
  });

  test("an unbroken run longer than the limit is cut at the limit", () => {
    expect(splitText("x".repeat(25), 10)).toEqual(["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
  });

  test("a long word is cut, but the words around it are kept whole", () => {
    const chunks = splitText(`start ${"y".repeat(30)} end`, 12);
    expect(chunks).toEqual(["start", "y".repeat(12), "y".repeat(12), `${"y".repeat(6)} end`]);
  });

  test("a word that fits in a chunk is never cut, even after a very short first word", () => {
    // Only the space at index 1 is available before the limit. Cutting there gives a short
    // chunk; cutting at the limit would split "bbbbbbbbb", which fits in a chunk of its own.
    expect(splitText("a bbbbbbbbb ccc", 10)).toEqual(["a", "bbbbbbbbb", "ccc"]);
    const chunks = splitText(`Hi ${"w".repeat(1998)} and more`, 2000);
    expect(chunks.map((c) => (c === "w".repeat(1998) ? "<1998 w>" : c))).toEqual(["Hi", "<1998 w>", "and more"]);
  });

  test("emoji (surrogate pairs) are never split by a hard cut", () => {
    const chunks = splitText("😀".repeat(25), 10);
    expect(chunks).toEqual(["😀".repeat(10), "😀".repeat(10), "😀".repeat(5)]);
    // Odd offsets: one ASCII letter first, so each pair straddles an even UTF-16 index.
    const mixed = `a${"👍".repeat(30)}`;
    for (const max of [2, 3, 7, 10]) {
      const parts = splitText(mixed, max);
      for (const p of parts) {
        expect(hasLoneSurrogate(p)).toBe(false);
        expect(cp(p)).toBeLessThanOrEqual(max);
      }
      expect(parts.join("")).toBe(mixed);
    }
  });

  test("chunks never start or end with whitespace and are never empty", () => {
    const chunks = splitText("a   b   c   d   e   f   g\n\n\n\nh   i", 5);
    for (const c of chunks) {
      expect(c.length).toBeGreaterThan(0);
      expect(c).toBe(c.trim());
    }
    expect(chunks.join(" ").split(/\s+/)).toEqual(["a", "b", "c", "d", "e", "f", "g", "h", "i"]);
  });
});

// --- property-style -------------------------------------------------------------------------

const TOKENS = [
  "word",
  "a",
  "the",
  "Messenger",
  "😀",
  "👍🏽",
  "éàü",
  "中文",
  "Hello.",
  "Really?",
  "Wow!",
  "Well…",
  '"quoted."',
  "(aside.)",
  "example.com/path?q=1",
  "3.14",
];
const SEPARATORS = [" ", " ", " ", " ", "  ", "\n", "\n\n", "\n \n", "\t", " \n"];

function randomText(r: Random, maxLength: number, maxWord: number): string {
  let text = r.chance(0.2) ? r.pick(SEPARATORS) : "";
  while (text.length < maxLength) {
    const kind = r.int(20);
    if (kind === 0)
      text += r.pick(["x", "😀", "é"]).repeat(r.between(1, 3 * maxWord)); // an unbroken run
    else text += r.pick(TOKENS);
    text += r.pick(SEPARATORS);
    if (r.chance(0.05)) break;
  }
  return r.chance(0.5) ? text : text.trimEnd();
}

const short = (s: string | undefined) => JSON.stringify(s === undefined || s.length <= 40 ? s : `${s.slice(0, 40)}…(${s.length})`);

/** Every word of `text` in order: words that fit are whole tokens of the chunks; longer ones are cut in pieces. */
function expectWordsInOrder(text: string, chunks: string[], max: number): void {
  const words = text.split(/\s+/).filter(Boolean);
  const tokens = chunks.flatMap((c) => c.split(/\s+/)).filter(Boolean);
  let i = 0;
  for (const word of words) {
    if (cp(word) <= max) {
      if (tokens[i] !== word) throw new Error(`word ${short(word)} expected at token ${i}, got ${short(tokens[i])}`);
      i++;
      continue;
    }
    let joined = "";
    while (joined.length < word.length && i < tokens.length) joined += tokens[i++];
    if (joined !== word) throw new Error(`long word ${short(word)} rebuilt as ${short(joined)}`);
  }
  if (i !== tokens.length) throw new Error(`extra tokens after the last word: ${tokens.slice(i).map(short).join(", ")}`);
}

describe("splitText: invariants over random texts", () => {
  const cases: [max: number, length: number, count: number][] = [
    [2, 60, 150],
    [7, 200, 200],
    [40, 600, 200],
    [640, 5000, 80],
    [2000, 12000, 60],
  ];
  for (const [max, length, count] of cases) {
    test(`max ${max}: ${count} texts up to ${length} characters`, () => {
      const r = seeded(max * 7919 + length);
      for (let n = 0; n < count; n++) {
        const text = randomText(r, r.between(0, length), max);
        const preferParagraphs = r.chance(0.5);
        const chunks = splitText(text, max, { preferParagraphs });
        const label = `case ${n} (max ${max}, preferParagraphs ${preferParagraphs}): ${JSON.stringify(text.slice(0, 160))}`;
        try {
          for (const c of chunks) {
            expect(cp(c)).toBeGreaterThan(0);
            expect(cp(c)).toBeLessThanOrEqual(max);
            expect(c).toBe(c.trim());
            expect(hasLoneSurrogate(c)).toBe(false);
          }
          // Nothing lost, nothing added, nothing reordered.
          expect(chunks.join("").replace(/\s+/g, "")).toBe(text.replace(/\s+/g, ""));
          expectWordsInOrder(text, chunks, max);
          // A text that fits is one chunk.
          if (cp(text.trim()) <= max) expect(chunks).toEqual(text.trim() ? [text.trim()] : []);
        } catch (error) {
          throw new Error(`${label}\n${(error as Error).message}`);
        }
      }
    });
  }
});
