/**
 * The settings of a running server, and their reload (`SIGHUP`, `POST /api/reload`). The file is
 * read and checked by the same pipeline as at start (load.ts); an invalid file changes nothing.
 * A valid one is compared with the current settings (diff.ts): the parts that take changes live
 * read them through `endpoints` and `known` at each use, and the steps registered with `onReload`
 * (app.ts: the log level and secrets, the flows, the Page tokens) take the rest: first every
 * `prepare` (a flow module that does not load refuses the whole reload), then every `apply`; what
 * is set up at start only keeps its old value and is reported as needing a restart.
 */
import { loadSettingsFile, type Config, type Env } from "./load.ts";
import { SettingsError, formatProblem, type SettingsProblem } from "./problems.ts";
import type { Logger } from "../log/logger.ts";
import { diffSettings } from "./diff.ts";
import { LiveMap } from "../core/live-map.ts";
import { Value } from "@sinclair/typebox/value";
import { EndpointSettings } from "./schema.ts";

export type ReloadOutcome =
  | { ok: true; applied: string[]; needs_restart: string[]; unchanged: boolean; warnings?: SettingsProblem[] }
  | { ok: false; problems: SettingsProblem[] };

/** A step of a reload: `prepare` may refuse the new settings (nothing is changed then), `apply` takes them. */
export interface ReloadStep {
  /** `changed`: the key paths that change live (diff.ts). */
  prepare?(next: Config, changed: readonly string[]): Promise<void>;
  apply(next: Config, previous: Config): void | Promise<void>;
}

export class LiveSettings {
  #current: Config;
  /** The endpoints of the current settings (webhooks, the admin API). */
  readonly endpoints: LiveMap<string, EndpointSettings>;
  /**
   * The current endpoints, and those a reload removed with their last settings: work already
   * accepted for a removed endpoint (events, replies) is finished, not thrown away.
   */
  readonly known: LiveMap<string, EndpointSettings>;
  /**
   * Every secret of every settings loaded so far: one array, grown in place, that the parts
   * scrubbing stored errors hold (a rotated token is scrubbed as the old one was).
   */
  readonly secrets: string[];
  readonly #steps: ReloadStep[] = [];
  #running: Promise<unknown> = Promise.resolve();

  constructor(
    config: Config,
    private readonly env: Env = process.env,
  ) {
    this.secrets = [...config.secrets];
    this.#current = { ...config, secrets: this.secrets };
    this.endpoints = new LiveMap(config.endpoints.map((e) => [e.id, e]));
    this.known = new LiveMap(config.endpoints.map((e) => [e.id, e]));
  }

  /** The settings now; the object the parts were built from (its `secrets` is `this.secrets`). */
  get current(): Config {
    return this.#current;
  }

  onReload(step: ReloadStep): this {
    this.#steps.push(step);
    return this;
  }

  /** `reloadFile`, logged: every problem with its key path, or what was applied and what needs a restart. */
  async reload(log: Logger): Promise<ReloadOutcome> {
    const outcome = await this.reloadFile();
    if (!outcome.ok) {
      log.error(
        `settings reload refused: ${outcome.problems.length} problem${outcome.problems.length === 1 ? "" : "s"} in the file, nothing was changed: fix them and reload again`,
      );
      for (const p of outcome.problems) log.error(`settings reload refused: ${formatProblem(p)}`, { path: p.path });
      return outcome;
    }
    for (const warning of outcome.warnings ?? []) log.warn(`settings: ${formatProblem(warning)}`, { path: warning.path });
    log.info(outcome.unchanged ? "settings reloaded: nothing changed" : "settings reloaded", { applied: outcome.applied });
    if (outcome.needs_restart.length > 0) {
      log.warn(`settings changed that take effect only after a restart: ${outcome.needs_restart.join(", ")}`, { needs_restart: outcome.needs_restart });
    }
    return outcome;
  }

  /** Reads the settings file again and applies it; one reload at a time. */
  reloadFile(): Promise<ReloadOutcome> {
    const run = this.#running.then(() => this.#reloadFile());
    this.#running = run.catch(() => {});
    return run;
  }

  async #reloadFile(): Promise<ReloadOutcome> {
    const file = this.#current.file;
    if (!file)
      return { ok: false, problems: [{ path: "", message: "started without a settings file (the built-in demo): nothing to reload; start with --config" }] };
    let next: Config;
    try {
      next = loadSettingsFile(file, this.env);
    } catch (error) {
      if (error instanceof SettingsError) return { ok: false, problems: error.problems };
      throw error;
    }
    const outcome = await this.apply(next);
    return outcome.ok ? { ...outcome, warnings: [...next.warnings] } : outcome;
  }

  /** Applies settings already checked (loadSettingsFile): the live part at once, the rest reported. */
  async apply(next: Config): Promise<ReloadOutcome> {
    const previous = this.#current;
    const { live, restart } = diffSettings(previous, next);
    if (live.length === 0) return { ok: true, applied: [], needs_restart: restart, unchanged: restart.length === 0 };
    try {
      for (const step of this.#steps) await step.prepare?.(next, live);
    } catch (error) {
      return { ok: false, problems: [{ path: "", message: `the new settings were not applied: ${(error as Error).message}` }] };
    }
    for (const secret of next.secrets) if (!this.secrets.includes(secret)) this.secrets.push(secret);
    // The restart-only keys keep their values until the restart: only the live ones are taken.
    const endpoints = next.endpoints.map((e) => startOnly(e, this.known.get(e.id)));
    this.#current = {
      ...previous,
      log: { ...previous.log, level: next.log.level },
      admin: { ...previous.admin, api_keys: next.admin.api_keys },
      flows: next.flows,
      endpoints,
      secrets: this.secrets,
    };
    const known = new Map(this.known);
    for (const e of endpoints) known.set(e.id, e);
    this.known.swap(known);
    this.endpoints.swap(new Map(endpoints.map((e) => [e.id, e])));
    // Every step starts in this same tick, so that no turn sees new endpoints with old flows; then their writes are awaited.
    await Promise.all(this.#steps.map((step) => step.apply(this.#current, previous)));
    return { ok: true, applied: live, needs_restart: restart, unchanged: false };
  }
}

/**
 * An endpoint as a reload takes it: what is set up at start (its transformers, NLU, translation,
 * Messenger profile) stays as it was, and stays off for an endpoint added, until the restart.
 */
function startOnly(endpoint: EndpointSettings, before: EndpointSettings | undefined): EndpointSettings {
  const off = (key: "transformers" | "nlu" | "translation") => Value.Default(EndpointSettings.properties[key], {}) as never;
  const kept = {
    transformers: before?.transformers ?? off("transformers"),
    nlu: before?.nlu ?? off("nlu"),
    translation: before?.translation ?? off("translation"),
  };
  const { messenger_profile: _, ...rest } = endpoint;
  return { ...rest, ...kept, ...(before?.messenger_profile ? { messenger_profile: before.messenger_profile } : {}) };
}
