/**
 * Translating some texts of one turn: what the cache has costs nothing; the rest goes to the
 * provider in as few requests as its limits allow (one, for the texts of one message), the texts
 * with markers in its HTML mode (markers.ts); what came back is cached, counted and timed.
 * Never throws: a failure is an answer (`ok: false`) that the caller turns into an untranslated
 * message.
 */
import { createHash } from "node:crypto";
import type { TranslationSettings } from "../config/schema.ts";
import { setNewest } from "../core/bounded.ts";
import type { Clock } from "../core/clock.ts";
import type { RecentErasures } from "../core/recent-erasures.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter, Histogram, Registry } from "../metrics/registry.ts";
import { fromMarkup, segments, toMarkup } from "./markers.ts";
import { ProviderError, type CallResult, type Provider } from "./providers/index.ts";
import type { CachedTranslation, TranslationStore } from "./store.ts";

export type Direction = "to_flow" | "to_user";

export interface TranslateOptions {
  /** The texts' language, or null: the provider detects it. */
  source: string | null;
  target: string;
  direction: Direction;
  /** The user's own text (cached for them only) or the flow's (found by anyone's turn). */
  kind: "user" | "bot";
  glossary?: string;
  formality?: string;
}

export type Translated = { ok: true; texts: string[]; detected: (string | null)[] } | { ok: false; error: string; result: CallResult };

/** The translation's metrics, shared by every endpoint. */
export class TranslationMetrics {
  readonly requests: Counter;
  readonly seconds: Histogram;
  readonly characters: Counter;
  readonly cacheHits: Counter;

  constructor(registry: Registry) {
    this.requests = registry.counter(
      "messenger_translation_requests_total",
      "Requests to translation providers by endpoint, provider, direction (to_flow, to_user) and result (ok, timeout, network_error, rate_limited, quota_exceeded, refused, server_error, unreadable_answer).",
    );
    this.seconds = registry.histogram(
      "messenger_translation_request_seconds",
      "Translation provider request latency (with its retries) by endpoint and provider.",
    );
    this.characters = registry.counter(
      "messenger_translation_characters_total",
      "Characters sent to translation providers (what they bill) by endpoint, provider and direction.",
    );
    this.cacheHits = registry.counter(
      "messenger_translation_cache_hits_total",
      "Texts translated from the cache, without a provider request, by endpoint and direction.",
    );
  }
}

/** Cache rows kept in memory as well. */
const RECENT = 10_000;

/**
 * The cache rows read or stored lately, in memory as well, so that a repeated text costs no
 * query either (the database stays the truth, read when memory has nothing). Cleared at every
 * erasure: it never holds what an erasure removed.
 */
export class RecentTranslations {
  readonly #entries = new Map<string, CachedTranslation>();

  get(key: string, now: number): CachedTranslation | undefined {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt <= now) this.#entries.delete(key);
    return entry && entry.expiresAt > now ? entry : undefined;
  }

  set(key: string, entry: CachedTranslation): void {
    setNewest(this.#entries, key, entry, RECENT);
  }

  clear(): void {
    this.#entries.clear();
  }
}

export interface TranslatorDeps {
  endpointId: string;
  settings: TranslationSettings;
  provider: Provider;
  store: TranslationStore;
  writes: WriteQueue;
  clock: Clock;
  metrics: TranslationMetrics;
  erasures: RecentErasures;
  recent: RecentTranslations;
}

/** A text's answer that turns asking for the same text await (null: the request failed). */
type InFlight = { translation: string; detected: string | null } | null;

/** One translate call's texts and what is known of them, as #fetch fills it in. */
interface FetchState {
  unique: string[];
  parts: ReturnType<typeof segments>[];
  keys: string[];
  out: (string | undefined)[];
  detected: (string | null)[];
  options: TranslateOptions;
  stopping?: AbortSignal;
  announce: boolean;
}

export class Translator {
  /** What identifies the provider's translations in the cache: another provider, host or model translates anew. */
  readonly #fingerprint: string;
  /** Texts being asked for right now, by cache key. */
  readonly #inFlight = new Map<string, Promise<InFlight>>();

  constructor(private readonly deps: TranslatorDeps) {
    const s = deps.settings;
    this.#fingerprint = JSON.stringify([s.provider, s.url ?? "", s.model ?? ""]);
  }

  async translate(key: UserKey, texts: readonly string[], options: TranslateOptions, log: Logger, stopping?: AbortSignal): Promise<Translated> {
    const { settings, store, clock, metrics, endpointId } = this.deps;
    const mark = this.deps.erasures.mark();
    const unique = [...new Set(texts)];
    const parts = unique.map((t) => segments(t, settings.marker));
    const keys = unique.map((t) => this.#cacheKey(key, t, options));
    const out: (string | undefined)[] = unique.map(() => undefined);
    const detected: (string | null)[] = unique.map(() => null);
    const caching = settings.cache_hours > 0;
    if (caching) {
      const { recent } = this.deps;
      const now = clock.now();
      const hit = (i: number, entry: CachedTranslation) => {
        out[i] = entry.translation;
        detected[i] = entry.detected;
      };
      keys.forEach((k, i) => {
        const entry = recent.get(k, now);
        if (entry) hit(i, entry);
      });
      const unknown = keys.filter((_, i) => out[i] === undefined);
      const cached =
        unknown.length === 0
          ? new Map<string, CachedTranslation>()
          : await store.cached(unknown, now).catch((error): Map<string, CachedTranslation> => {
              log.warn("could not read the translation cache; the provider is asked", { error });
              return new Map();
            });
      keys.forEach((k, i) => {
        const entry = cached.get(k);
        if (!entry) return;
        hit(i, entry);
        if (!this.deps.erasures.since(key, mark)) recent.set(k, entry);
      });
      const hits = out.filter((t) => t !== undefined).length;
      if (hits > 0) metrics.cacheHits.inc({ endpoint: endpointId, direction: options.direction }, hits);
    }
    const misses = unique.flatMap((_, i) => (out[i] === undefined ? [i] : []));
    if (misses.length > 0) {
      // A text another turn is asking the provider for right now (many users getting the same
      // answer at once): its answer is awaited instead of asking again. What that fails to bring
      // is asked for below, after this turn's own.
      const joined: Promise<void>[] = [];
      const own = caching
        ? misses.filter((i) => {
            const pending = this.#inFlight.get(keys[i]!);
            if (pending)
              joined.push(
                pending.then((found) => {
                  if (found) [out[i], detected[i]] = [found.translation, found.detected];
                }),
              );
            return !pending;
          })
        : misses;
      const failed = await this.#fetch(own, { unique, parts, keys, out, detected, options, stopping, announce: caching });
      if (failed) return failed;
      await Promise.all(joined);
      const rest = misses.filter((i) => out[i] === undefined);
      const failedAgain = await this.#fetch(rest, { unique, parts, keys, out, detected, options, stopping, announce: false });
      if (failedAgain) return failedAgain;
      // Not for a person erased meanwhile: the erasure's deletes are queued, and this would come after them.
      if (caching && !this.deps.erasures.since(key, mark)) {
        const now = clock.now();
        const fetched = [...own, ...rest];
        const entries = fetched.map((i) => ({ key: keys[i]!, kind: options.kind, translation: out[i]!, detected: detected[i]! }));
        const expiresAt = now + Math.round(settings.cache_hours * 3_600_000);
        for (const e of entries) this.deps.recent.set(e.key, { translation: e.translation, detected: e.detected, expiresAt });
        if (entries.length > 0)
          this.deps.writes
            .run(store.put(key, entries, now, settings.cache_hours), { durable: false })
            .catch((error) => log.warn("could not store translations in the cache", { error }));
      }
    }
    const byText = new Map(unique.map((t, i) => [t, i]));
    return { ok: true, texts: texts.map((t) => out[byText.get(t)!]!), detected: texts.map((t) => detected[byText.get(t)!]!) };
  }

  /**
   * Asks the provider for the texts `indexes` (in as few requests as its limits allow) and fills
   * `out` and `detected`; a failure is returned. With `announce`, other turns find these texts in
   * flight until the answer is in (null for them when it failed).
   */
  async #fetch(indexes: number[], t: FetchState): Promise<Translated | null> {
    if (indexes.length === 0) return null;
    const answers = new Map<string, (found: InFlight) => void>();
    if (t.announce)
      for (const i of indexes) {
        const k = t.keys[i]!;
        this.#inFlight.set(k, new Promise<InFlight>((resolve) => answers.set(k, resolve)));
      }
    let failed: Translated | null = null;
    try {
      const markup = indexes.some((i) => t.parts[i]!.some((s) => s.keep));
      const sent = indexes.map((i) => (markup ? toMarkup(t.parts[i]!) : t.unique[i]!));
      for (const chunk of this.#chunks(indexes, sent)) {
        const answer = await this.#request(chunk.texts, t.options, markup, t.stopping);
        if (!answer.ok) {
          failed = answer;
          break;
        }
        chunk.indexes.forEach((i, j) => {
          t.out[i] = markup ? fromMarkup(answer.texts[j]!, t.parts[i]!) : answer.texts[j]!;
          // Only what was detected: with a given source, providers repeat it (DeepL's detected_source_language).
          t.detected[i] = t.options.source === null ? (answer.detected[j] ?? null) : null;
        });
      }
    } finally {
      for (const i of indexes) {
        const k = t.keys[i]!;
        const resolve = answers.get(k);
        if (!resolve) continue;
        this.#inFlight.delete(k);
        resolve(failed || t.out[i] === undefined ? null : { translation: t.out[i]!, detected: t.detected[i]! });
      }
    }
    return failed;
  }

  async #request(texts: string[], options: TranslateOptions, markup: boolean, stopping?: AbortSignal): Promise<Translated> {
    const { provider, metrics, endpointId } = this.deps;
    const labels = { endpoint: endpointId, provider: provider.name, direction: options.direction };
    metrics.characters.inc(
      labels,
      texts.reduce((n, t) => n + t.length, 0),
    );
    const started = performance.now();
    let result: CallResult = "ok";
    try {
      const request = { texts, source: options.source, target: options.target, markup, glossary: options.glossary, formality: options.formality };
      const answer = await provider.translate(request, stopping);
      return { ok: true, texts: answer.texts, detected: answer.detected };
    } catch (error) {
      result = error instanceof ProviderError ? error.result : "unreadable_answer";
      return { ok: false, result, error: error instanceof Error ? error.message : String(error) };
    } finally {
      metrics.requests.inc({ ...labels, result });
      metrics.seconds.observe({ endpoint: endpointId, provider: provider.name }, (performance.now() - started) / 1000);
    }
  }

  /** The texts in requests within the provider's limits (at least one text each). */
  #chunks(indexes: number[], texts: string[]): { indexes: number[]; texts: string[] }[] {
    const { maxBatch, maxChars } = this.deps.provider;
    const chunks: { indexes: number[]; texts: string[]; chars: number }[] = [];
    texts.forEach((text, j) => {
      const last = chunks.at(-1);
      if (last && last.texts.length < maxBatch && last.chars + text.length <= maxChars) {
        last.indexes.push(indexes[j]!);
        last.texts.push(text);
        last.chars += text.length;
      } else chunks.push({ indexes: [indexes[j]!], texts: [text], chars: text.length });
    });
    return chunks;
  }

  #cacheKey(key: UserKey, text: string, options: TranslateOptions): string {
    const owner = options.kind === "user" ? userKeyId(key) : "";
    const parts = [this.#fingerprint, owner, options.source ?? "auto", options.target, options.glossary ?? "", options.formality ?? "", text];
    return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
  }
}
