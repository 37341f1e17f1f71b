/**
 * The rules of docs/architecture.md that a machine can check: who may import whom, no row read by
 * position, no citation of documents the repository does not contain, files of one job.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");

/** The levels of docs/architecture.md: a part imports only from lower levels (or its own folder). */
const LEVELS: Record<string, number> = {
  main: 13,
  cli: 12,
  app: 11,
  admin: 10,
  simulator: 10,
  ops: 10,
  conversations: 9,
  replies: 8,
  nlu: 8,
  translation: 8,
  handover: 7,
  people: 7,
  transformers: 7,
  webhook: 6,
  inbox: 5,
  messenger: 4,
  flows: 3,
  cluster: 3,
  config: 2,
  db: 2,
  http: 2,
  log: 1,
  metrics: 1,
  native: 1,
  version: 1,
  core: 0,
};

/** The files that load the operator's modules by their configured path. */
const OPERATOR_MODULE_LOADERS = ["src/flows/script.ts", "src/transformers/worker.ts"];

function filesUnder(dir: string, ending: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path, ending));
    else if (ending.test(name)) out.push(path);
  }
  return out;
}

/** The part a file of src/ belongs to: its folder, or the file's name at the top. */
function partOf(file: string): string {
  const [first, second] = relative(join(ROOT, "src"), file).split("/");
  return second === undefined ? first!.replace(/\.ts$/, "") : first!;
}

const sources = filesUnder(join(ROOT, "src"), /\.(ts|js)$/).filter((f) => !f.endsWith(".d.ts"));

describe("the rules of the house (docs/architecture.md)", () => {
  test("every part has a level", () => {
    const parts = new Set(sources.map(partOf));
    expect([...parts].filter((p) => LEVELS[p] === undefined)).toEqual([]);
  });

  test("imports point down: a part imports only from lower levels or its own folder", () => {
    const wrong: string[] = [];
    for (const file of sources) {
      const from = partOf(file);
      // An import whose module is computed cannot be checked: only the loaders of the operator's
      // own modules (a script flow, the transformers) have one.
      if (!OPERATOR_MODULE_LOADERS.includes(relative(ROOT, file)) && /\bimport\s*\(\s*[^"'\s)]/.test(readFileSync(file, "utf8"))) {
        wrong.push(`${relative(ROOT, file)} imports a computed module`);
      }
      for (const match of readFileSync(file, "utf8").matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
        const target = normalize(join(dirname(file), match[1]!));
        if (!target.startsWith(join(ROOT, "src"))) continue; // package.json, assets
        const to = partOf(target);
        if (to !== from && !(LEVELS[from]! > LEVELS[to]!)) wrong.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)} (${from} → ${to})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test("no database row is read by position", () => {
    // Indexing a row, taking the first values of one apart, or its values in order.
    const byPosition =
      /\b(?:r|row)\[\d+\]|\brows\[\d+\]\??!?\.?\[\d+\]|\.rows\[\d+\]!?\[|\.rows\.at\(\d+\)\??\.?\[|const \[[^\]]*\] = [^;]*\.rows\[\d+\]|Object\.values\([^)]*rows/;
    const wrong = sources.flatMap((file) =>
      readFileSync(file, "utf8")
        .split("\n")
        .flatMap((line, i) => (byPosition.test(line) ? [`${relative(ROOT, file)}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(wrong).toEqual([]);
  });

  test("comments and docs cite files of the repository, not documents it does not contain", () => {
    const outside =
      /\bSPEC\s*(?:§|\d)|\bSPEC\.md|messenger-platform\.md|cognigy-endpoint\.md|peer-lessons\.md|STACK\.md|STYLE\.md|\.\.\/shared\/|product contract/i;
    const texts = [
      ...sources,
      ...filesUnder(join(ROOT, "test"), /\.ts$/).filter((f) => !f.endsWith("architecture.test.ts")),
      ...filesUnder(join(ROOT, "docs"), /\.md$/),
      ...filesUnder(join(ROOT, "examples"), /\.(ts|toml|md)$/),
      join(ROOT, "README.md"),
    ];
    const wrong = texts.flatMap((file) =>
      readFileSync(file, "utf8")
        .split("\n")
        .flatMap((line, i) => (outside.test(line) ? [`${relative(ROOT, file)}:${i + 1}`] : [])),
    );
    expect(wrong).toEqual([]);
  });

  test("files do one job: none over 430 lines", () => {
    const long = sources.map((f) => ({ file: relative(ROOT, f), lines: readFileSync(f, "utf8").split("\n").length })).filter((f) => f.lines > 430);
    expect(long).toEqual([]);
  });
});
