/** A problem found in the settings file, with the key path it belongs to. */
export interface SettingsProblem {
  /** `endpoints[0].pages[1].access_token`; empty for problems with the file as a whole. */
  path: string;
  message: string;
}

export class SettingsError extends Error {
  constructor(
    readonly file: string | null,
    readonly problems: SettingsProblem[],
    readonly warnings: SettingsProblem[] = [],
  ) {
    super(`${file ?? "settings"}: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n${problems.map(formatProblem).join("\n")}`);
    this.name = "SettingsError";
  }
}

export function formatProblem(p: SettingsProblem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}

/** `["endpoints", 0, "pages"]` → `endpoints[0].pages` */
export function joinPath(parts: readonly (string | number)[]): string {
  let out = "";
  for (const part of parts) {
    if (typeof part === "number") out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) out += out ? `.${part}` : part;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

/** A TypeBox JSON pointer (`/endpoints/0/pages/1/id`) as a key path (`endpoints[0].pages[1].id`). */
export function pointerToPath(pointer: string): string {
  if (!pointer) return "";
  const parts = pointer
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  return joinPath(parts);
}

/** The closest candidate within a small edit distance, for "did you mean" hints. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const limit = Math.max(2, Math.floor(word.length / 3));
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance && d <= limit) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const distances = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = distances[0]!;
    distances[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = distances[j]!;
      distances[j] = Math.min(distances[j]! + 1, distances[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return distances[b.length]!;
}
