/**
 * What the Hrana stand-in (hrana-server.ts) needs to know of an SQL text before SQLite runs it:
 * where one statement ends (a `sequence` runs several; an `execute` must hold exactly one), which
 * parameters a statement has (arguments are checked against them), and whether it is an INSERT,
 * UPDATE or DELETE (only those report `affected_row_count`, only an INSERT `last_insert_rowid`).
 *
 * Statements end as SQLite's `sqlite3_complete()` decides: at a semicolon outside strings, quoted
 * names and comments, except inside `CREATE [TEMP] TRIGGER … BEGIN … END`, which ends at the
 * semicolon after its END. Parameters are numbered as SQLite numbers them: `?NNN` is number NNN,
 * `?` the number after the largest so far, and `:name`, `@name`, `$name` the number after the
 * largest so far when first seen, the same number when seen again.
 */

type TokenKind = "semi" | "ws" | "word" | "param" | "open" | "close" | "other";

interface Token {
  kind: TokenKind;
  text: string;
  start: number;
  end: number;
}

/** SQLite's identifier characters: letters, digits, `_`, `$` and anything not ASCII. */
const isIdChar = (c: string | undefined): boolean => c !== undefined && (/[A-Za-z0-9_$]/.test(c) || c.charCodeAt(0) > 0x7f);

function* tokens(sql: string): Generator<Token> {
  let i = 0;
  while (i < sql.length) {
    const start = i;
    const c = sql[i]!;
    let kind: TokenKind = "other";
    if (c === ";") {
      kind = "semi";
      i++;
    } else if (/\s/.test(c)) {
      kind = "ws";
      while (i < sql.length && /\s/.test(sql[i]!)) i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      kind = "ws";
      while (i < sql.length && sql[i] !== "\n") i++;
    } else if (c === "/" && sql[i + 1] === "*") {
      kind = "ws";
      const close = sql.indexOf("*/", i + 2);
      i = close < 0 ? sql.length : close + 2;
    } else if (c === "'" || c === '"' || c === "`" || c === "[") {
      const close = sql.indexOf(c === "[" ? "]" : c, i + 1);
      i = close < 0 ? sql.length : close + 1;
    } else if (c === "?") {
      kind = "param";
      i++;
      while (i < sql.length && /[0-9]/.test(sql[i]!)) i++;
    } else if ((c === ":" || c === "@" || c === "$" || c === "#") && isIdChar(sql[i + 1])) {
      kind = "param";
      i++;
      while (isIdChar(sql[i])) i++;
    } else if (isIdChar(c)) {
      kind = "word";
      while (isIdChar(sql[i])) i++;
    } else {
      kind = c === "(" ? "open" : c === ")" ? "close" : "other";
      i++;
    }
    yield { kind, text: sql.slice(start, i), start, end: i };
  }
}

// sqlite3_complete()'s states and the tokens that move between them.
const [SEMI, WS, OTHER, EXPLAIN, CREATE, TEMP, TRIGGER, END] = [0, 1, 2, 3, 4, 5, 6, 7];
const TRANSITIONS = [
  /* 0 invalid */ [1, 0, 2, 3, 4, 2, 2, 2],
  /* 1 start   */ [1, 1, 2, 3, 4, 2, 2, 2],
  /* 2 normal  */ [1, 2, 2, 2, 2, 2, 2, 2],
  /* 3 explain */ [1, 3, 3, 2, 4, 2, 2, 2],
  /* 4 create  */ [1, 4, 2, 2, 2, 4, 5, 2],
  /* 5 trigger */ [6, 5, 5, 5, 5, 5, 5, 5],
  /* 6 semi    */ [6, 6, 5, 5, 5, 5, 5, 7],
  /* 7 end     */ [1, 7, 5, 5, 5, 5, 5, 5],
];

function completeToken(token: Token): number {
  if (token.kind === "semi") return SEMI;
  if (token.kind === "ws") return WS;
  if (token.kind !== "word") return OTHER;
  const word = token.text.toUpperCase();
  if (word === "EXPLAIN") return EXPLAIN;
  if (word === "CREATE") return CREATE;
  if (word === "TEMP" || word === "TEMPORARY") return TEMP;
  if (word === "TRIGGER") return TRIGGER;
  if (word === "END") return END;
  return OTHER;
}

/** The statements of an SQL text, each without its closing semicolon; empty ones are left out. */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let state = 0;
  let start = 0;
  let significant = false;
  for (const token of tokens(sql)) {
    const next = TRANSITIONS[state]![completeToken(token)]!;
    if (token.kind === "semi" && next === 1) {
      if (significant) statements.push(sql.slice(start, token.start).trim());
      start = token.end;
      significant = false;
    } else if (token.kind !== "ws" && token.kind !== "semi") {
      significant = true;
    }
    state = next;
  }
  if (significant) statements.push(sql.slice(start).trim());
  return statements;
}

export interface StatementInfo {
  /** Parameter names by number - 1 (null for a `?`); its length is SQLite's parameter count. */
  params: (string | null)[];
  explain: boolean;
  /** An INSERT or REPLACE (also after a WITH clause). */
  insert: boolean;
  /** An INSERT, REPLACE, UPDATE or DELETE. */
  writes: boolean;
}

const VERBS = new Set(["SELECT", "VALUES", "INSERT", "REPLACE", "UPDATE", "DELETE"]);

/** The parameters and the kind of one statement. */
export function describeStatement(sql: string): StatementInfo {
  const params: (string | null)[] = [];
  const named = new Map<string, number>();
  let depth = 0;
  let first: string | null = null;
  let verb: string | null = null;
  for (const token of tokens(sql)) {
    if (token.kind === "open") depth++;
    else if (token.kind === "close") depth--;
    else if (token.kind === "param") {
      if (token.text === "?") params.push(null);
      else if (token.text.startsWith("?")) {
        const n = Number(token.text.slice(1));
        while (params.length < n) params.push(null);
        params[n - 1] = token.text;
      } else if (!named.has(token.text)) {
        params.push(token.text);
        named.set(token.text, params.length);
      }
    } else if (token.kind === "word" && depth === 0) {
      const word = token.text.toUpperCase();
      first ??= word;
      if (verb === null && VERBS.has(word)) verb = word;
    }
  }
  const main = first === "WITH" ? verb : first;
  return {
    params,
    explain: first === "EXPLAIN",
    insert: main === "INSERT" || main === "REPLACE",
    writes: main === "INSERT" || main === "REPLACE" || main === "UPDATE" || main === "DELETE",
  };
}
