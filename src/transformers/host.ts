/**
 * Runs an endpoint's transformer functions (transformers/transformers.ts) off the main event loop: a small pool of
 * Worker threads (transformers/worker.ts), each with the module loaded. A run goes to an idle
 * worker (or waits for one) and is stopped after `timeoutMs` (5 s): the worker is terminated and
 * replaced, so a busy loop or a hang costs one worker for that long and never blocks webhooks,
 * lanes, or other users' runs on the other workers.
 *
 * The module file is watched: when it changes, a new set of workers loads it and takes the next
 * runs; the old ones finish what they run and end. A module that no longer loads is reported and
 * the old code stays. SIGHUP reloads too (cli/serve.ts).
 */
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "../log/logger.ts";
import type { SessionStorage } from "./storage.ts";

export const TRANSFORMER_TIMEOUT_MS = 5_000;
export const DEFAULT_POOL_SIZE = 4;
/**
 * Workers added while every worker is busy (say, several hung or slow runs): other users' runs
 * then still start at once. Extra workers end when they are idle and nothing waits.
 */
export const MAX_POOL_SIZE = 16;
/** A worker is added only when every worker has been on its run for this long (busy, not just fast). */
const GROW_AFTER_MS = 250;
/** An extra worker idle for this long ends. */
const SHRINK_AFTER_MS = 30_000;

/**
 * A run that failed. `unavailable`: the cause was the server, not the operator's code (a time
 * limit, no free worker, a worker that died, a stop): trying again later may work.
 */
export class TransformerError extends Error {
  constructor(
    message: string,
    readonly unavailable = false,
  ) {
    super(message);
  }
}

interface Run {
  id: number;
  fn: string;
  args: unknown;
  resolve(value: unknown): void;
  reject(error: Error): void;
  durable: boolean;
  queueTimer?: Timer;
}

interface Slot {
  worker: Worker;
  generation: number;
  run: (Run & { timer: Timer; storages: Map<string, string>; startedAt: number }) | null;
  /** For an extra worker while idle: when it ends. */
  idleTimer?: Timer;
}

export interface TransformerHostOptions {
  endpointId: string;
  module: string;
  /** Where the runs' getSessionStorage objects are read from and saved to. */
  storage: SessionStorage;
  log: Logger;
  poolSize?: number;
  timeoutMs?: number;
  /** How long a worker may take to load the module (default: `timeoutMs`); an NLU script's runs may be limited to less. */
  loadTimeoutMs?: number;
  /** Watch the module file and reload on change (default true). */
  watch?: boolean;
}

function workerUrl(): string {
  // In the compiled binary the worker is an entry point of its own (scripts/build.ts).
  return Bun.isStandaloneExecutable ? "./transformers/worker.ts" : new URL("./worker.ts", import.meta.url).href;
}

export class TransformerHost {
  #slots: Slot[] = [];
  #queue: Run[] = [];
  #generation = 0;
  #functions = new Set<string>();
  #nextId = 0;
  #watcher: FSWatcher | null = null;
  #reloadTimer: Timer | null = null;
  #stopped = false;
  /** Extra workers being started. */
  #growing = 0;
  #growCheck: Timer | null = null;
  /** Workers still loading the module (ended by stop()). */
  readonly #loading = new Set<Worker>();
  #refill: Timer | null = null;
  readonly #timeoutMs: number;
  readonly #loadTimeoutMs: number;
  readonly #size: number;
  readonly #log: Logger;

  constructor(private readonly options: TransformerHostOptions) {
    this.#timeoutMs = options.timeoutMs ?? TRANSFORMER_TIMEOUT_MS;
    this.#loadTimeoutMs = options.loadTimeoutMs ?? this.#timeoutMs;
    this.#size = options.poolSize ?? DEFAULT_POOL_SIZE;
    this.#log = options.log.child({ endpoint: options.endpointId, transformer: options.module });
  }

  /** Loads the module in every worker; rejects with the reason when it does not load. */
  async start(): Promise<void> {
    const { slots, functions } = await this.#spawn(++this.#generation);
    this.#slots = slots;
    this.#functions = functions;
    if (this.options.watch !== false) {
      try {
        // The folder, not the file: editors and deploy tools save by writing a new file and
        // renaming it over the old one, which a watch on the file itself stops seeing.
        const name = basename(this.options.module);
        this.#watcher = watch(dirname(this.options.module), (_event, file) => {
          if (file === null || String(file) === name) this.#scheduleReload();
        });
      } catch (error) {
        this.#log.warn("cannot watch the transformer module for changes; send SIGHUP to reload it", { error });
      }
    }
  }

  /** Whether the module defines the function. */
  has(fn: string): boolean {
    return this.#functions.has(fn);
  }

  /**
   * Runs a function; resolves with its return value, rejects with a TransformerError. A run that
   * finds no free worker within the time limit fails too (the pool is out of workers).
   * `durableStorage`: the session storage it changes is fsynced before the promise settles (for
   * runs whose outcome is acknowledged to a caller right after).
   */
  run(fn: string, args: unknown, options: { durableStorage?: boolean } = {}): Promise<unknown> {
    if (this.#stopped) return Promise.reject(new TransformerError("the server is stopping", true));
    return new Promise((resolve, reject) => {
      const run: Run = { id: ++this.#nextId, fn, args, resolve, reject, durable: options.durableStorage === true };
      run.queueTimer = setTimeout(() => {
        const at = this.#queue.indexOf(run);
        if (at < 0) return;
        this.#queue.splice(at, 1);
        reject(new TransformerError(`${fn} could not start within ${this.#timeoutMs} ms: every transformer worker was busy or starting`, true));
      }, this.#timeoutMs);
      this.#queue.push(run);
      this.#dispatch();
    });
  }

  /** Loads the module anew; the old workers end after their current run. */
  async reload(): Promise<void> {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    let spawned: { slots: Slot[]; functions: Set<string> };
    try {
      spawned = await this.#spawn(generation);
    } catch (error) {
      if (this.#generation === generation) this.#generation = generation - 1; // the old workers stay current
      this.#log.error(`the changed transformer module does not load; the previous version stays in use: ${(error as Error).message}`);
      return;
    }
    if (this.#stopped || generation !== this.#generation) {
      for (const slot of spawned.slots) slot.worker.terminate();
      return;
    }
    const old = this.#slots;
    this.#slots = spawned.slots;
    this.#functions = spawned.functions;
    for (const slot of old) if (!slot.run) slot.worker.terminate();
    this.#log.info("transformer module reloaded", { functions: [...spawned.functions] });
    this.#dispatch();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    if (this.#reloadTimer) clearTimeout(this.#reloadTimer);
    if (this.#growCheck) clearTimeout(this.#growCheck);
    for (const run of this.#queue.splice(0)) {
      clearTimeout(run.queueTimer);
      run.reject(new TransformerError("the server is stopping", true));
    }
    for (const worker of this.#loading) worker.terminate();
    this.#loading.clear();
    for (const slot of this.#slots) {
      if (slot.run) {
        clearTimeout(slot.run.timer);
        slot.run.reject(new TransformerError("the server is stopping", true));
      }
      slot.worker.terminate();
    }
    this.#slots = [];
  }

  #scheduleReload(): void {
    if (this.#reloadTimer) clearTimeout(this.#reloadTimer);
    // Editors write in several steps: wait until the file has been quiet for a moment.
    this.#reloadTimer = setTimeout(() => void this.reload(), 150);
  }

  async #spawn(generation: number): Promise<{ slots: Slot[]; functions: Set<string> }> {
    const made = await Promise.allSettled(Array.from({ length: this.#size }, () => this.#newSlot(generation)));
    const failed = made.find((m) => m.status === "rejected") as PromiseRejectedResult | undefined;
    const slots = made.filter((m) => m.status === "fulfilled").map((m) => (m as PromiseFulfilledResult<{ slot: Slot; functions: string[] }>).value);
    if (failed) {
      for (const s of slots) s.slot.worker.terminate();
      throw failed.reason;
    }
    return { slots: slots.map((s) => s.slot), functions: new Set(slots[0]?.functions ?? []) };
  }

  /** A worker with the module loaded; one that does not load within the time limit is stopped. */
  #newSlot(generation: number): Promise<{ slot: Slot; functions: string[] }> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(workerUrl());
      this.#loading.add(worker);
      const slot: Slot = { worker, generation, run: null };
      let loaded = false;
      const fail = (reason: string) => {
        if (loaded) return;
        loaded = true;
        clearTimeout(loadTimer);
        this.#loading.delete(worker);
        worker.terminate();
        reject(new TransformerError(reason));
      };
      const loadTimer = setTimeout(
        () => fail(`the transformer module ${this.options.module} did not load within ${this.#loadTimeoutMs} ms (top-level code that never ends?)`),
        this.#loadTimeoutMs,
      );
      worker.onmessage = (event) => {
        const message = event.data as Record<string, any>;
        if (!loaded && message.type === "loaded") {
          if (message.error) return fail(`cannot load the transformer module ${this.options.module}: ${message.error}`);
          loaded = true;
          clearTimeout(loadTimer);
          this.#loading.delete(worker);
          resolve({ slot, functions: message.functions as string[] });
          return;
        }
        void this.#onMessage(slot, message);
      };
      worker.onerror = (event) => {
        if (!loaded) return fail(`the transformer worker failed to start: ${(event as ErrorEvent).message}`);
        this.#died(slot, `the transformer worker failed: ${(event as ErrorEvent).message}`);
      };
      worker.addEventListener("close", () => {
        if (!loaded) return fail("the transformer worker ended while loading the module");
        this.#died(slot, "the transformer worker ended (process.exit in the module?)");
      });
      worker.postMessage({ type: "load", module: this.options.module });
    });
  }

  /**
   * A loaded worker failed outside a run's answer (an error thrown later, a rejected promise
   * nobody awaited, process.exit): its run, if any, fails now, and it is replaced.
   */
  #died(slot: Slot, reason: string): void {
    if (!this.#slots.includes(slot) && !slot.run) return; // already replaced, or an old generation's worker ending
    this.#retire(slot, (fn) => `${fn}: ${reason}`);
    this.#log.warn(`${reason}; a new worker takes its place`);
  }

  /** Ends a worker: its run, if any, fails (the server's cause, not the code's); a new worker takes its place. */
  #retire(slot: Slot, failure: (fn: string) => string): void {
    const run = slot.run;
    slot.run = null;
    if (run) {
      clearTimeout(run.timer);
      run.reject(new TransformerError(failure(run.fn), true));
    }
    slot.worker.terminate();
    const at = this.#slots.indexOf(slot);
    if (at >= 0) {
      this.#slots.splice(at, 1);
      this.#refillSoon(0);
    }
    this.#dispatch();
  }

  /** Brings the pool back to its size (after a stopped or dead worker); retries while the module does not load. */
  #refillSoon(delayMs: number): void {
    if (this.#refill || this.#stopped) return;
    this.#refill = setTimeout(async () => {
      this.#refill = null;
      const generation = this.#generation;
      while (!this.#stopped && generation === this.#generation && this.#slots.length < this.#size) {
        try {
          if (!(await this.#addSlot())) return;
        } catch (error) {
          this.#log.error(`could not start a transformer worker; trying again in a second: ${(error as Error).message}`);
          this.#refillSoon(1_000);
          return;
        }
      }
    }, delayMs);
    this.#refill.unref?.();
  }

  async #onMessage(slot: Slot, message: Record<string, any>): Promise<void> {
    const run = slot.run;
    if (message.type === "log") {
      const level = (["debug", "info", "warn", "error"].includes(message.level) ? message.level : "info") as "debug" | "info" | "warn" | "error";
      this.#log[level](`transformer: ${String(message.text).slice(0, 4000)}`, { function: run?.fn });
      return;
    }
    if (message.type === "storage") {
      try {
        const value = await this.options.storage.read(message.key);
        // Only for the run that asked (a late request of an earlier run must not set this one's baseline).
        if (slot.run && slot.run.id === message.runId) slot.run.storages.set(message.key, JSON.stringify(value));
        slot.worker.postMessage({ type: "storage", id: message.id, key: message.key, value });
      } catch (error) {
        slot.worker.postMessage({ type: "storage", id: message.id, key: message.key, value: null, error: (error as Error).message });
      }
      return;
    }
    if (message.type !== "result" || !run || run.id !== message.id) return;
    clearTimeout(run.timer);
    // The worker sends JSON: what does not survive it (a BigInt, a function) is not a valid return.
    let payload: { ok: boolean; value?: unknown; error?: string; storages?: [string, Record<string, unknown>][] };
    try {
      payload = JSON.parse(String(message.json));
    } catch {
      payload = { ok: false, error: "its return value could not be read" };
    }
    try {
      await this.options.storage.save(run.storages, payload.storages ?? [], run.durable);
    } catch (error) {
      this.#log.error("could not save the transformer's session storage", { error, function: run.fn });
    }
    slot.run = null; // only now: no next run on this worker before the storage is saved
    if (payload.ok) run.resolve(payload.value ?? null);
    else run.reject(new TransformerError(`${run.fn} threw: ${payload.error}`));
    this.#release(slot);
  }

  /** A slot is free again: an old generation's worker ends, an extra one after a while idle. */
  #release(slot: Slot): void {
    if (!this.#slots.includes(slot)) {
      if (!slot.run) slot.worker.terminate();
    } else if (this.#slots.length > this.#size) {
      clearTimeout(slot.idleTimer);
      slot.idleTimer = setTimeout(() => {
        if (slot.run || this.#slots.length <= this.#size) return;
        this.#slots.splice(this.#slots.indexOf(slot), 1);
        slot.worker.terminate();
      }, SHRINK_AFTER_MS);
      slot.idleTimer.unref?.();
    }
    this.#dispatch();
  }

  /**
   * Every worker is busy and runs wait. If all have been on their runs for a while (slow or hung
   * code, not a burst of quick runs), start one more, up to MAX_POOL_SIZE; else look again soon.
   */
  #grow(): void {
    if (this.#stopped || this.#slots.length + this.#growing >= Math.max(this.#size, MAX_POOL_SIZE) || this.#growing >= this.#queue.length) return;
    const now = performance.now();
    const youngest = Math.max(...this.#slots.map((s) => s.run?.startedAt ?? now));
    if (now - youngest < GROW_AFTER_MS) {
      this.#growCheck ??= setTimeout(
        () => {
          this.#growCheck = null;
          this.#dispatch();
        },
        GROW_AFTER_MS - (now - youngest) + 1,
      );
      return;
    }
    this.#growing++;
    this.#addSlot()
      .catch((error) => this.#log.error("could not start another transformer worker", { error }))
      .finally(() => this.#growing--);
  }

  /**
   * Starts a worker with the current module and adds it to the pool, where it takes waiting runs;
   * false when the pool was stopped or reloaded meanwhile (the worker is ended). Rejects when the
   * module does not load.
   */
  async #addSlot(): Promise<boolean> {
    const generation = this.#generation;
    const { slot } = await this.#newSlot(generation);
    if (this.#stopped || generation !== this.#generation) {
      slot.worker.terminate();
      return false;
    }
    this.#slots.push(slot);
    this.#dispatch();
    return true;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const slot = this.#slots.find((s) => !s.run);
      if (!slot) {
        this.#grow();
        return;
      }
      const run = this.#queue.shift()!;
      clearTimeout(run.queueTimer);
      const timer = setTimeout(() => this.#timedOut(slot), this.#timeoutMs);
      clearTimeout(slot.idleTimer);
      slot.run = { ...run, timer, storages: new Map(), startedAt: performance.now() };
      try {
        slot.worker.postMessage({ type: "run", id: run.id, fn: run.fn, args: run.args });
      } catch (error) {
        clearTimeout(timer);
        slot.run = null;
        run.reject(new TransformerError(`${run.fn}: its arguments cannot be passed to the worker: ${(error as Error).message}`));
      }
    }
  }

  /** The run took too long: its worker is stopped and replaced. */
  #timedOut(slot: Slot): void {
    if (slot.run) this.#retire(slot, (fn) => `${fn} did not finish within ${this.#timeoutMs} ms and was stopped`);
  }
}
