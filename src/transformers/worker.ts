/**
 * The transformer worker: a Worker thread that loads the operator's transformer module and runs
 * its functions when the main thread asks (transformers/host.ts). A busy loop or a hang in the
 * operator's code stops only this thread; the host terminates it after the time limit and starts
 * another.
 *
 * The module may export the functions (`export function handleInput(...)`, or a default export
 * object with them), or call the global `createWebhookTransformer({ handleInput, ... })` as
 * Cognigy's transformers do (`createNluTransformer({ preNlu, postNlu })` and
 * `createNluCodeTransformer({ getNluResult })` for the NLU functions). Every function gets, as globals:
 * - `httpRequest(options)`: one outbound HTTP request per execution (a second call fails);
 *   `options` as npm `request`'s: `uri`/`url`, `method`, `headers`, `body`, `json`.
 * - `getSessionStorage(userId, sessionId)`: a plain object kept in the database for that pair;
 *   what is in it when the function returns is saved.
 * - `console.*`: written to the server's log with the endpoint and the function.
 *
 * Entry point of its own in the compiled binary (scripts/build.ts).
 */

type Message =
  | { type: "load"; module: string }
  | { type: "run"; id: number; fn: string; args: unknown }
  | { type: "storage"; id: number; key: string; value: Record<string, unknown> | null; error?: string };

const FUNCTIONS = [
  "handleInput",
  "handleOutput",
  "handleExecutionFinished",
  "handleInject",
  "handleNotify",
  // The NLU hooks, and the NLU of a `script` connector (docs/nlu.md).
  "handlePreNlu",
  "handlePostNlu",
  "getNluResult",
] as const;

let functions: Record<string, (args: unknown) => unknown> = {};
/** The execution running now (one at a time per worker). */
let current: { id: number; requests: number; storages: Map<string, Record<string, unknown>> } | null = null;
const pendingStorage = new Map<number, { resolve(v: Record<string, unknown>): void; reject(e: Error): void }>();
let storageRequests = 0;

/** The worker's global scope (bun-types describes the main thread's). */
declare const self: { postMessage(message: unknown): void; onmessage: ((event: MessageEvent) => void) | null };
const post = (message: unknown) => self.postMessage(message);

function logLine(level: string, args: unknown[]) {
  const text = args.map((a) => (typeof a === "string" ? a : safeJson(a))).join(" ");
  post({ type: "log", level, text, id: current?.id ?? null });
}
/** An error's message, even when reading it throws. */
function describe(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    return "an error that cannot be described";
  }
}
function safeJson(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
const globals = globalThis as Record<string, unknown>;
globals.console = {
  ...console,
  debug: (...a: unknown[]) => logLine("debug", a),
  log: (...a: unknown[]) => logLine("info", a),
  info: (...a: unknown[]) => logLine("info", a),
  warn: (...a: unknown[]) => logLine("warn", a),
  error: (...a: unknown[]) => logLine("error", a),
  trace: (...a: unknown[]) => logLine("debug", a),
  dir: (...a: unknown[]) => logLine("info", a),
  table: (...a: unknown[]) => logLine("info", a),
};
globals.createWebhookTransformer = (given: Record<string, unknown>) => {
  for (const name of FUNCTIONS) if (typeof given?.[name] === "function") functions[name] = given[name] as (args: unknown) => unknown;
};
// Cognigy's NLU transformers name the hooks preNlu / postNlu.
globals.createNluTransformer = (given: Record<string, unknown>) => {
  for (const [name, as] of [
    ["preNlu", "handlePreNlu"],
    ["postNlu", "handlePostNlu"],
    ["handlePreNlu", "handlePreNlu"],
    ["handlePostNlu", "handlePostNlu"],
  ] as const)
    if (typeof given?.[name] === "function") functions[as] = given[name] as (args: unknown) => unknown;
};
globals.createNluCodeTransformer = (given: Record<string, unknown>) => {
  if (typeof given?.getNluResult === "function") functions.getNluResult = given.getNluResult as (args: unknown) => unknown;
};
// The one request per execution is the only way out: the worker's own fetch is taken away.
const outboundFetch = globalThis.fetch;
delete globals.fetch;
globals.httpRequest = async (options: Record<string, any>) => {
  const run = current;
  if (!run) throw new Error("httpRequest can only be called while a transformer function runs");
  if (++run.requests > 1) throw new Error("httpRequest: only one request per transformer execution");
  const url = String(options?.uri ?? options?.url ?? "");
  if (!/^https?:\/\//.test(url)) throw new Error(`httpRequest: uri must be an http(s) URL, got "${url}"`);
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  let body: string | undefined;
  if (options.body !== undefined) {
    if (options.json && typeof options.body !== "string") {
      body = JSON.stringify(options.body);
      headers["content-type"] ??= "application/json";
    } else body = String(options.body);
  }
  const response = await outboundFetch(url, { method: String(options.method ?? "GET").toUpperCase(), headers, body, signal: AbortSignal.timeout(4_000) });
  const text = await response.text();
  if (options.json || (response.headers.get("content-type") ?? "").includes("json")) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
};
globals.getSessionStorage = (userId: unknown, sessionId: unknown): Promise<Record<string, unknown>> => {
  const run = current;
  if (!run) return Promise.reject(new Error("getSessionStorage can only be called while a transformer function runs"));
  const key = JSON.stringify([String(userId), String(sessionId)]);
  const known = run.storages.get(key);
  if (known) return Promise.resolve(known);
  const id = ++storageRequests;
  return new Promise((resolve, reject) => {
    pendingStorage.set(id, {
      resolve: (value) => {
        run.storages.set(key, value);
        resolve(value);
      },
      reject,
    });
    post({ type: "storage", id, key, runId: run.id });
  });
};

self.onmessage = async (event: MessageEvent) => {
  const message = event.data as Message;
  if (message.type === "storage") {
    const waiting = pendingStorage.get(message.id);
    pendingStorage.delete(message.id);
    if (message.error) waiting?.reject(new Error(message.error));
    else waiting?.resolve(message.value ?? {});
    return;
  }
  if (message.type === "load") {
    try {
      functions = {};
      const loaded = (await import(message.module)) as Record<string, unknown>;
      const exported = (typeof loaded.default === "object" && loaded.default !== null ? loaded.default : loaded) as Record<string, unknown>;
      for (const name of FUNCTIONS) if (typeof exported[name] === "function") functions[name] = exported[name] as (args: unknown) => unknown;
      post({ type: "loaded", functions: Object.keys(functions) });
    } catch (error) {
      post({ type: "loaded", error: (error as Error)?.message ?? String(error) });
    }
    return;
  }
  const { id, fn, args } = message;
  current = { id, requests: 0, storages: new Map() };
  // The answer travels as JSON text: a value that JSON cannot carry (a BigInt, a cycle) fails here,
  // in the worker, instead of later in the server.
  const answer = (body: Record<string, unknown>): string => {
    try {
      return JSON.stringify(body);
    } catch (error) {
      return JSON.stringify({ ok: false, error: `its return value or session storage is not JSON: ${describe(error)}` });
    }
  };
  try {
    const f = functions[fn];
    if (!f) throw new Error(`the transformer module has no function ${fn}`);
    const result = await f(args);
    post({ type: "result", id, json: answer({ ok: true, value: result === undefined ? null : result, storages: [...current.storages] }) });
  } catch (error) {
    post({ type: "result", id, json: answer({ ok: false, error: describe(error), storages: [...current.storages] }) });
  } finally {
    current = null;
  }
};
