/**
 * Property-based fuzz test of the webhook (docs/webhook.md, "The fuzz test"): signed envelopes of
 * Messenger's shape, good items mixed with items and entries whose fields are nulled, retyped,
 * duplicated, nested deeply or missing, posted into the app in process and posted again (Facebook
 * redelivers). Every POST must be answered 200 (nothing here is a failure to store), every good
 * item stored once and processed once, and the server healthy afterwards.
 *
 * Runs in `npm test` with a fixed seed and a few dozen runs. Longer: `npm run fuzz` (FUZZ_RUNS
 * runs, a new seed each time unless FUZZ_SEED is set; a failure prints the seed to run it again;
 * FUZZ_SHRINK=1 shrinks a failing case, off by default since each attempt is a run against the
 * same server).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fc from "fast-check";
import { signBody } from "../../src/webhook/signature.ts";
import { APP_SECRET, PAGE_ID, UNLISTED_PAGE_ID } from "../helpers/config.ts";
import { APP_ID, rows, startConversation, until, userText, type Conversation } from "../helpers/conversation.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : process.env.FUZZ_RUNS ? Date.now() % 2 ** 31 : 11_2026;
const PAGE_INBOX = "263902037430900";

/** What the flow was given, in order (the flow module runs in this process). */
interface Recorded {
  source: string;
  request: string;
}
/**
 * Turns for what users sent. A handover's own turns are left out: a take_thread_control of the
 * past times out at once, and its turn comes whenever the timer fires.
 */
const recorded = (): Recorded[] => ((globalThis as any).__webhookFuzz ??= []).filter((t: Recorded) => t.source !== "handover");

const FLOW_FILES = {
  "flows/record.ts": `
export default async (input) => {
  (globalThis.__webhookFuzz ??= []).push({ source: input.source, request: JSON.stringify(input.data.request ?? null) });
  return input.text === "ping" ? { outputs: [{ text: "pong" }] } : { outputs: [] };
};
`,
};

let c: Conversation;
beforeAll(async () => {
  c = await startConversation({
    files: FLOW_FILES,
    flow: 'kind = "script"\nmodule = "flows/record.ts"',
    endpointToml: "[endpoints.profiles]\nrequest_profile_data = false\nupdate_contact_profiles = false",
    // Room for several items nested 60,000 levels deep in one body.
    extra: "[server]\nmax_body_bytes = 16777216",
  });
});
afterAll(async () => {
  await c?.close();
});

// --- what is generated ----------------------------------------------------------------------

/** Good items from a person in messaging[]: these run the flow. */
const INPUT_KINDS = ["text", "quick_reply", "attachment", "postback", "referral", "optin", "user_ref_optin"] as const;
/** Good items that are stored and recorded as done, never run. */
const QUIET_KINDS = ["delivery", "read", "reaction", "edit", "unsent"] as const;
/** Good items that change who has the floor or are Page-level: sent for users of their own. */
const FLOOR_KINDS = ["echo", "pass", "take", "request", "app_roles", "policy", "standby_message", "standby_postback"] as const;
type Kind = (typeof INPUT_KINDS)[number] | (typeof QUIET_KINDS)[number] | (typeof FLOOR_KINDS)[number];

type Item = Record<string, any>;

/** A good item of this kind; `tag` is in it (and in nothing else), `ts` is its time. */
function goodItem(kind: Kind, psid: string, tag: string, ts: number): Item {
  const from = { sender: { id: psid }, recipient: { id: PAGE_ID }, timestamp: ts };
  const fromPage = { sender: { id: PAGE_ID }, recipient: { id: psid }, timestamp: ts };
  const mid = `m_${tag}`;
  switch (kind) {
    case "text":
    case "standby_message":
      return { ...from, message: { mid, text: `text ${tag}` } };
    case "quick_reply":
      return { ...from, message: { mid, text: "Blue", quick_reply: { payload: tag } } };
    case "attachment":
      return { ...from, message: { mid, attachments: [{ type: "image", payload: { url: `https://cdn.example.test/${tag}.jpg` } }] } };
    case "postback":
    case "standby_postback":
      return { ...from, postback: { mid, title: "Go", payload: tag } };
    case "referral":
      return { ...from, referral: { ref: tag, source: "SHORTLINK", type: "OPEN_THREAD" } };
    case "optin":
      return { ...from, optin: { type: "notification_messages", payload: tag, notification_messages_token: `t${tag}` } };
    case "user_ref_optin":
      return { recipient: { id: PAGE_ID }, timestamp: ts, optin: { ref: tag, user_ref: `ur_${tag}` } };
    case "delivery":
      return { sender: { id: psid }, recipient: { id: PAGE_ID }, delivery: { mids: [mid], watermark: ts } };
    case "read":
      return { ...from, read: { watermark: ts, note: tag } };
    case "reaction":
      return { ...from, reaction: { reaction: "love", emoji: "\u2764\ufe0f", action: "react", mid } };
    case "edit":
      return { ...from, message_edit: { mid, text: "edited", num_edit: 1 } };
    case "unsent":
      return { ...from, message: { mid, is_deleted: true } };
    case "echo":
      return { ...fromPage, message: { is_echo: true, app_id: Number(PAGE_INBOX), mid, text: `echo ${tag}` } };
    case "pass":
      return { ...from, pass_thread_control: { previous_owner_app_id: PAGE_INBOX, new_owner_app_id: APP_ID, metadata: tag } };
    case "take":
      return { ...fromPage, take_thread_control: { previous_owner_app_id: APP_ID, new_owner_app_id: PAGE_INBOX, metadata: tag } };
    case "request":
      return { ...fromPage, request_thread_control: { requested_owner_app_id: 123456789, metadata: tag } };
    case "app_roles":
      return { recipient: { id: PAGE_ID }, timestamp: ts, app_roles: { [APP_ID]: ["primary_receiver"], note: [tag] } };
    case "policy":
      return { recipient: { id: PAGE_ID }, timestamp: ts, "policy-enforcement": { action: "block", reason: tag } };
  }
}

/**
 * Values a field may become. What JSON.stringify cannot write is a marker written into the text
 * later: deep values, duplicated keys, and 1e400 (which JSON.parse reads as Infinity).
 */
const ODD_VALUES: unknown[] = [
  null,
  "",
  "x",
  0,
  -1,
  1.5,
  1e308,
  "__INFINITY__",
  true,
  [],
  {},
  [null],
  { a: null },
  "9".repeat(40),
  "\u0000",
  "\ud800",
  "../../me/messages",
  "y".repeat(10_000),
];
/** 60,000 levels overflowed JSON.stringify when the inbox stored the item. */
const DEPTHS = [10, 65, 2_000, 60_000];

interface Mutation {
  op: "null" | "retype" | "delete" | "deep" | "dupKey";
  /** Within the event's own object (message, delivery, ...) rather than anywhere in the item. */
  inEvent: boolean;
  path: number;
  value: number;
  depth: number;
}
const mutation = fc.record({
  op: fc.constantFrom("null", "retype", "delete", "deep", "dupKey") as fc.Arbitrary<Mutation["op"]>,
  inEvent: fc.boolean(),
  path: fc.nat(),
  value: fc.nat({ max: ODD_VALUES.length - 1 }),
  depth: fc.nat({ max: DEPTHS.length - 1 }),
});

/** Every (parent, key) in an item, depth first. */
function places(value: unknown, out: [Record<string, any>, string | number][] = []): [Record<string, any>, string | number][] {
  if (value === null || typeof value !== "object") return out;
  for (const key of Array.isArray(value) ? value.keys() : Object.keys(value)) {
    out.push([value as Record<string, any>, key]);
    places((value as Record<string, any>)[key as any], out);
  }
  return out;
}

function mutate(item: Item, mutations: Mutation[]): Item {
  for (const m of mutations) {
    const event = Object.keys(item).find((k) => !["sender", "recipient", "timestamp"].includes(k));
    const inside = m.inEvent && event !== undefined ? places(item[event]) : [];
    const all = inside.length > 0 ? inside : places(item);
    if (all.length === 0) break;
    const [parent, key] = all[m.path % all.length]!;
    const odd = ODD_VALUES[m.value];
    if (m.op === "null") parent[key as any] = null;
    else if (m.op === "retype") parent[key as any] = odd;
    else if (m.op === "deep") parent[key as any] = `__DEEP_${DEPTHS[m.depth]}__`;
    else if (m.op === "delete") Array.isArray(parent) ? parent.splice(key as number, 1) : delete parent[key];
    // A second copy of the key, after the first: JSON.parse keeps the last.
    else if (!Array.isArray(parent)) parent[`__DUP_${String(key)}__`] = odd;
  }
  return item;
}

const NOT_AN_ITEM: unknown[] = [null, "junk", 7, [], true, [{ sender: { id: "1" } }]];

/** Entries that are wrong as a whole, or around items that are. */
const BAD_ENTRIES = [
  "messaging_null",
  "time_string",
  "id_true",
  "id_unlisted",
  "messaging_object",
  "entry_null",
  "entry_deep",
  "standby_string",
  "no_id",
] as const;

const scenario = fc.record({
  talkers: fc.integer({ min: 1, max: 3 }),
  inputs: fc.array(fc.tuple(fc.constantFrom(...INPUT_KINDS, ...QUIET_KINDS), fc.nat()), { minLength: 1, maxLength: 6 }),
  floor: fc.array(fc.constantFrom(...FLOOR_KINDS), { maxLength: 4 }),
  bad: fc.array(
    fc.record({
      base: fc.constantFrom(...INPUT_KINDS, ...QUIET_KINDS, ...FLOOR_KINDS),
      mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
      twice: fc.boolean(),
    }),
    { maxLength: 5 },
  ),
  notItems: fc.array(fc.nat({ max: NOT_AN_ITEM.length - 1 }), { maxLength: 2 }),
  badEntries: fc.array(fc.constantFrom(...BAD_ENTRIES), { maxLength: 3 }),
  goodTwice: fc.boolean(),
  order: fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
  entryFirst: fc.boolean(),
});
type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

// --- one run ----------------------------------------------------------------------------------

let runs = 0;

interface Built {
  body: string;
  /** Tags of good items that must run the flow once. */
  run: string[];
  /** Tags of good items that must be stored once and end done, the flow not run for them. */
  quiet: string[];
  /** Tags of good items for their own users: stored once, end done. */
  stored: string[];
}

function build(s: Scenario): Built {
  const r = ++runs;
  // Users of their own per run, so that one run's handover events cannot hold another's talkers.
  const psid = (n: number) => String(7_100_000_000_000_000 + r * 100 + n);
  const base = 1_767_225_600_000 + r * 10_000;
  let t = 0;
  const built: Built = { body: "", run: [], quiet: [], stored: [] };
  const messaging: Item[] = [];
  const standby: Item[] = [];
  s.inputs.forEach(([kind, who], i) => {
    const tag = `g${r}x${i}z`;
    messaging.push(goodItem(kind, psid(who % s.talkers), tag, base + ++t));
    (INPUT_KINDS.includes(kind as never) ? built.run : built.quiet).push(tag);
  });
  if (s.goodTwice) messaging.push(structuredClone(messaging[0]!));
  s.floor.forEach((kind, i) => {
    const tag = `f${r}x${i}z`;
    const item = goodItem(kind, psid(50 + i), tag, base + ++t);
    (kind.startsWith("standby") ? standby : messaging).push(item);
    built.stored.push(tag);
  });
  const noise: unknown[] = [];
  s.bad.forEach((b, i) => {
    const item = mutate(goodItem(b.base, psid(80 + (i % 10)), `b${r}x${i}z`, base + ++t), b.mutations);
    noise.push(item);
    if (b.twice) noise.push(structuredClone(item));
  });
  for (const n of s.notItems) noise.push(NOT_AN_ITEM[n]);
  // The good items keep their order among themselves (a user's events are run by timestamp anyway).
  const mixed: unknown[] = [...messaging];
  for (const [i, n] of noise.entries()) mixed.splice(s.order[i]! % (mixed.length + 1), 0, n);

  const good = { id: PAGE_ID, time: base, messaging: mixed, standby };
  const bad = s.badEntries.map((kind, i): unknown => {
    const items = [goodItem("text", psid(90 + i), `e${r}x${i}z`, base + ++t)];
    switch (kind) {
      case "messaging_null":
        return { id: PAGE_ID, time: base, messaging: null };
      case "time_string":
        return { id: PAGE_ID, time: "x", messaging: [], standby: null };
      case "id_true":
        return { id: true, time: base, messaging: items };
      case "id_unlisted":
        return { id: UNLISTED_PAGE_ID, time: base, messaging: items };
      case "messaging_object":
        return { id: PAGE_ID, time: base, messaging: { sender: { id: psid(90 + i) } } };
      case "entry_null":
        return null;
      case "entry_deep":
        return "__DEEP_60000__";
      case "standby_string":
        return { id: PAGE_ID, time: base, standby: "nothing" };
      case "no_id":
        return { time: base, messaging: items };
      default:
        throw new Error(`no bad entry of kind ${kind satisfies never}`);
    }
  });
  const entries = s.entryFirst ? [...bad, good] : [good, ...bad];
  built.body = JSON.stringify({ object: "page", entry: entries })
    .replace(/"__DEEP_(\d+)__"/g, (_, n) => `${'{"a":'.repeat(Number(n))}1${"}".repeat(Number(n))}`)
    .replace(/"__DUP_((?:[^"\\]|\\.)*)__":/g, (_, key) => `"${key}":`)
    .replaceAll('"__INFINITY__"', "1e400");
  return built;
}

async function postSigned(body: string): Promise<number> {
  const response = await c.app.http.handle(
    new Request("http://localhost/webhooks/support", {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": signBody(APP_SECRET, body) },
      body,
    }),
  );
  await response.arrayBuffer();
  return response.status;
}

/** Until nothing stored is waiting to be processed (the engine has no idle event to await). */
async function drained(): Promise<void> {
  await until(async () => Number((await rows(c, "SELECT count(*) FROM inbox WHERE status = 'pending'"))[0]![0]) === 0, 20_000);
}

async function rowsWith(tag: string) {
  // Tags are letters and digits: safe in LIKE. Rows of kind "handover" are the engine's own (a
  // pass's outcome keeps the pass as its request).
  return rows(c, "SELECT kind, status FROM inbox WHERE event LIKE ? AND kind <> 'handover'", [`%"%${tag}%`]);
}

async function check(s: Scenario): Promise<void> {
  const built = build(s);
  expect(await postSigned(built.body)).toBe(200);
  await drained();
  // Rows of kind "handover" are the engine's own, written when a handover times out.
  const total = async () => Number((await rows(c, "SELECT count(*) FROM inbox WHERE kind <> 'handover'"))[0]![0]);
  const before = { rows: await total(), turns: recorded().length };
  // Facebook redelivers the same body: answered the same, no new work.
  expect(await postSigned(built.body)).toBe(200);
  await drained();
  expect(await total()).toBe(before.rows);
  expect(recorded().length).toBe(before.turns);

  for (const tag of [...built.run, ...built.quiet, ...built.stored]) {
    const found = await rowsWith(tag);
    expect({ tag, rows: found.map((r) => [String(r[0]), String(r[1])]) }).toMatchObject({ tag, rows: [[expect.not.stringMatching(/^malformed$/), "done"]] });
  }
  const turnsOf = (tag: string) => recorded().filter((t) => t.request.includes(tag)).length;
  for (const tag of built.run) expect({ tag, turns: turnsOf(tag) }).toEqual({ tag, turns: 1 });
  for (const tag of built.quiet) expect({ tag, turns: turnsOf(tag) }).toEqual({ tag, turns: 0 });
}

test(
  `fuzzed webhooks: always 200, every good item stored and processed once, redeliveries add nothing (${RUNS} runs, seed ${SEED})`,
  async () => {
    await fc.assert(fc.asyncProperty(scenario, check), { numRuns: RUNS, seed: SEED, endOnFailure: !process.env.FUZZ_SHRINK });
  },
  Math.max(30_000, RUNS * 1_000),
);

test("afterwards the server is healthy: /readyz 200, a new message is answered", async () => {
  const ready = await c.app.http.handle(new Request("http://localhost/readyz"));
  expect(ready.status).toBe(200);
  const psid = "7200000000000001";
  expect(await postSigned(JSON.stringify({ object: "page", entry: [{ id: PAGE_ID, time: Date.now(), messaging: [userText("ping", { psid })] }] }))).toBe(200);
  const [send] = await c.graph.waitForSends(1, { recipientId: psid });
  expect(send!.message.text).toBe("pong");
});
