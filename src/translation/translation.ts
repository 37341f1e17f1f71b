/**
 * Real-time translation (docs/translation.md): the user writes in their language, the flow works
 * in its own (`flow_language`, by default the endpoint's locale), the replies go back in the
 * user's. The turn (conversations/turn.ts) asks twice, through its `TurnTranslation`
 * (conversations/language.ts), which this class satisfies by its shape — this folder is below
 * conversations/ and does not import it:
 *
 * - `toFlow`, after the input transformer and before NLU and the flow: the user's typed text (a
 *   payload only with `translate_payloads`) into the flow's language; `input.language` and
 *   `input.data.translation = { user_language, flow_language, original_text, error? }`. With
 *   `user_language = "auto"` the same request detects the language (user-language.ts).
 * - `toUser`, for each output once converted and through the output transformer: the texts the
 *   user reads (messages.ts) into their language, markers removed (markers.ts).
 *
 * A provider that fails never loses a message: the flow gets the text untranslated (with
 * `error`), the user the reply untranslated; both are logged and counted (translator.ts).
 */
import type { Config } from "../config/load.ts";
import type { EndpointSettings, TranslationSettings } from "../config/schema.ts";
import type { Clock, Timers } from "../core/clock.ts";
import { RecentErasures } from "../core/recent-erasures.ts";
import type { UserKey } from "../core/user-key.ts";
import { yieldToIo } from "../core/yield.ts";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { FlowInput } from "../flows/schema.ts";
import type { Logger } from "../log/logger.ts";
import { maskMessage } from "../log/mask.ts";
import type { Registry } from "../metrics/registry.ts";
import { PURGE_BATCH } from "../people/retention.ts";
import { normalizeLanguage, sameLanguage } from "./languages.ts";
import { needsTranslation, segments, withoutMarkers } from "./markers.ts";
import { fitted, slotsOf, type Message } from "./messages.ts";
import { createProvider } from "./providers/index.ts";
import { TranslationStore } from "./store.ts";
import { RecentTranslations, TranslationMetrics, Translator } from "./translator.ts";
import { UserLanguages, withDetection } from "./user-language.ts";

/** What the turn tells (conversations/language.ts `TurnContext`). */
export interface TranslationContext {
  log: Logger;
  isPayload: boolean;
  signal: AbortSignal;
}

export interface TranslationDeps {
  config: Config;
  database: Database;
  writes: WriteQueue;
  clock: Clock;
  timers: Timers;
  log: Logger;
  metrics: Registry;
  /** The providers' fetch (tests pass a stand-in). */
  fetch?: typeof fetch;
}

interface EndpointTranslation {
  settings: TranslationSettings;
  flowLanguage: string;
  /** Null with `provider = "none"` (and `always_remove_markers`): markers are removed, nothing is translated. */
  translator: Translator | null;
  mask: boolean;
}

export class Translation {
  readonly store: TranslationStore;
  readonly #languages: UserLanguages;
  readonly #erasures = new RecentErasures();
  readonly #recent = new RecentTranslations();
  readonly #endpoints = new Map<string, EndpointTranslation>();

  constructor(private readonly deps: TranslationDeps) {
    this.store = new TranslationStore(deps.database);
    this.#languages = new UserLanguages(this.store);
    const metrics = new TranslationMetrics(deps.metrics);
    for (const endpoint of deps.config.endpoints) {
      const settings = endpoint.translation;
      if (settings.provider === "none" && !settings.always_remove_markers) continue;
      const warn = (message: string) => deps.log.warn(message, { endpoint: endpoint.id });
      const provider = createProvider(settings, { timers: deps.timers, fetch: deps.fetch ?? fetch, warn });
      const translator = provider
        ? new Translator({
            endpointId: endpoint.id,
            settings,
            provider,
            store: this.store,
            writes: deps.writes,
            clock: deps.clock,
            metrics,
            erasures: this.#erasures,
            recent: this.#recent,
          })
        : null;
      const flowLanguage = normalizeLanguage(settings.flow_language ?? endpoint.locale) ?? "en";
      this.#endpoints.set(endpoint.id, { settings, flowLanguage, translator, mask: endpoint.data_protection.mask_logging });
    }
  }

  /** Whether any endpoint translates or removes markers: only then do the turns need this. */
  get active(): boolean {
    return this.#endpoints.size > 0;
  }

  async toFlow(endpoint: EndpointSettings, key: UserKey, input: FlowInput, ctx: TranslationContext): Promise<void> {
    const et = this.#endpoints.get(endpoint.id);
    if (!et?.translator) return;
    const { settings, flowLanguage, translator } = et;
    const auto = settings.user_language === "auto";
    const original = input.text;
    const state = auto ? await this.#languages.get(key).catch((error) => this.#unreadable(ctx.log, error)) : null;
    let language = this.#language(et, state, input);
    let error: string | undefined;
    const typed = input.source === "user" && !ctx.isPayload;
    // An inject's text comes from the operator's systems, in the flow's language: not translated.
    if (input.source === "user" && (typed || settings.translate_payloads) && /\p{L}/u.test(original)) {
      const detecting = auto && typed && !state?.lockedAt;
      const source = detecting ? null : auto ? (state?.language ?? null) : language;
      if (source === null || !sameLanguage(source, flowLanguage)) {
        const mark = this.#erasures.mark();
        const glossary = source !== null && !auto ? settings.glossary_input : undefined;
        const options = { source, target: flowLanguage, direction: "to_flow" as const, kind: "user" as const, glossary };
        const result = await translator.translate(key, [original], options, ctx.log, ctx.signal);
        if (result.ok) {
          const found = result.detected[0] ?? null;
          const from = source ?? found;
          // Already in the flow's language: the flow gets the user's own words, not the provider's rewording.
          input.text = from !== null && sameLanguage(from, flowLanguage) ? original : result.texts[0]!;
          if (detecting && found) {
            const next = withDetection(state, found, messageId(input), settings.lock_after, this.deps.clock.now());
            if (next !== state && !this.#erasures.since(key, mark)) {
              this.#languages.remember(key, next);
              await this.deps.writes
                .run([this.store.saveLanguage(key, next, this.deps.clock.now())], { durable: false })
                .catch((e) => ctx.log.warn("could not store the user's language; it is detected again after a restart", { error: e }));
            }
            language = next.language;
          }
        } else {
          error = result.error;
          ctx.log.warn(`the user's text could not be translated; the flow gets it untranslated: ${maskMessage(result.error, et.mask)}`, {
            provider: settings.provider,
            result: result.result,
          });
        }
      }
    }
    input.language = language;
    input.data.translation = { user_language: language, flow_language: flowLanguage, original_text: original, ...(error ? { error } : {}) };
  }

  async toUser(endpoint: EndpointSettings, key: UserKey, input: FlowInput, messages: Message[], ctx: TranslationContext): Promise<Message[]> {
    const et = this.#endpoints.get(endpoint.id);
    if (!et) return messages;
    const { settings, flowLanguage, translator } = et;
    const copy = structuredClone(messages);
    const slots = copy.flatMap((m) => slotsOf(m, settings.translate_payloads));
    if (slots.length === 0) return messages;
    const untranslated = () => {
      for (const slot of slots) slot.set(withoutMarkers(slot.text, settings.marker));
      return copy;
    };
    if (!translator) return untranslated();
    const target = await this.#userLanguage(et, key, input, ctx.log);
    if (sameLanguage(target, flowLanguage)) return untranslated();
    const wanted = slots.filter((slot) => needsTranslation(segments(slot.text, settings.marker)));
    if (wanted.length === 0) return untranslated();
    const options = {
      source: flowLanguage,
      target,
      direction: "to_user" as const,
      kind: "bot" as const,
      glossary: settings.glossary_output,
      formality: settings.formality,
    };
    const result = await translator.translate(
      key,
      wanted.map((slot) => slot.text),
      options,
      ctx.log,
      ctx.signal,
    );
    if (!result.ok) {
      ctx.log.warn(`a reply could not be translated; it is sent untranslated: ${maskMessage(result.error, et.mask)}`, {
        provider: settings.provider,
        result: result.result,
      });
      return untranslated();
    }
    const translated = new Map(wanted.map((slot, i) => [slot, result.texts[i]!]));
    for (const slot of slots) slot.set(translated.get(slot) ?? withoutMarkers(slot.text, settings.marker));
    return copy.flatMap(fitted);
  }

  /** A person is erased (user-data.ts): their language leaves memory, and a turn in flight stores nothing more of theirs. */
  forgetUser(key: UserKey): void {
    this.#erasures.add(key);
    this.#languages.forget(key);
    this.#recent.clear(); // which rows were theirs, memory does not know: all go (the database has the others)
  }

  /**
   * Retention (people/retention.ts, hourly): the endpoint's expired cache rows, and with
   * `retention_days` its users' languages idle for longer. Rows per table.
   */
  async purge(endpoint: EndpointSettings, now: number): Promise<Record<string, number>> {
    const counts = { translation_cache: 0, translation_users: 0 };
    // An hourly run with nothing to purge costs two indexed looks, no commit.
    if (await this.store.anyExpired(endpoint.id, now))
      counts.translation_cache = await this.#purgeAll(() => this.store.purgeCache(endpoint.id, now, PURGE_BATCH));
    const days = endpoint.data_protection.retention_days;
    const idleBefore = now - days * 86_400_000;
    if (days > 0 && (await this.store.anyIdle(endpoint.id, idleBefore)))
      counts.translation_users = await this.#purgeAll(() => this.store.purgeUsers(endpoint.id, idleBefore, PURGE_BATCH));
    if (counts.translation_users > 0) this.#languages.forgetAll();
    return counts;
  }

  /** Scale-out: another instance may have changed what users' languages are; read them again when needed. */
  forgetLanguages(): void {
    this.#languages.forgetAll();
  }

  async #purgeAll(statement: () => ReturnType<TranslationStore["purgeCache"]>): Promise<number> {
    let deleted = 0;
    for (;;) {
      const [result] = await this.deps.writes.run([statement()], { durable: false });
      deleted += result!.rowsAffected;
      if (result!.rowsAffected < PURGE_BATCH) return deleted;
      await yieldToIo();
    }
  }

  /** The user's language for a reply: what this turn's `toFlow` said, else what is known of them. */
  async #userLanguage(et: EndpointTranslation, key: UserKey, input: FlowInput, log: Logger): Promise<string> {
    const told = (input.data.translation as { user_language?: unknown } | undefined)?.user_language;
    if (typeof told === "string") return told;
    const state = et.settings.user_language === "auto" ? await this.#languages.get(key).catch((error) => this.#unreadable(log, error)) : null;
    return this.#language(et, state, input);
  }

  /** Fixed; or detected; or, before anything was detected, the Facebook profile's locale; else the flow's language. */
  #language(et: EndpointTranslation, state: { language: string } | null, input: FlowInput): string {
    if (et.settings.user_language !== "auto") return normalizeLanguage(et.settings.user_language) ?? et.flowLanguage;
    if (state) return state.language;
    const locale = input.data.profile?.locale;
    return (typeof locale === "string" ? normalizeLanguage(locale) : null) ?? et.flowLanguage;
  }

  #unreadable(log: Logger, error: unknown): null {
    log.warn("could not read the user's language; it is detected again", { error });
    return null;
  }
}

/** The id of the message the input came from (Messenger's `mid`), or null. */
function messageId(input: FlowInput): string | null {
  const mid = (input.data.request as { message?: { mid?: unknown } } | undefined)?.message?.mid;
  return typeof mid === "string" ? mid : null;
}
