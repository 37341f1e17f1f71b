/**
 * The settings file, as one TypeBox schema: the type the rest of the program sees and the check
 * that `messenger-endpoint check` runs are the same object. Defaults live here too, so the
 * example file, the docs and the code cannot disagree about them.
 *
 * Kind-specific rules (an http flow needs `url`, an endpoint's `flow` must exist, ...) are checked
 * in `validate.ts`, where the messages can say exactly what to do.
 */
import { Type, type Static } from "@sinclair/typebox";
import { LLM_BUILTIN_TOOLS } from "./llm-names.ts";

const PositiveMs = (def: number, max = 3_600_000) => Type.Integer({ minimum: 0, maximum: max, default: def });

export const ServerSettings = Type.Object({
  host: Type.String({ default: "127.0.0.1", minLength: 1 }),
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  public_url: Type.Optional(Type.String({ pattern: "^https?://" })),
  max_body_bytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 1_048_576 }),
  /**
   * Made-up turns run through a private app before listening, so that the first real ones after
   * a start are not slower (cli/warm-up.ts); 0, the default: none. It costs about 35 MB of memory
   * from the start (docs/benchmarks.md).
   */
  warm_up_turns: Type.Integer({ minimum: 0, maximum: 10_000, default: 0 }),
});

export const StorageSettings = Type.Object({
  url: Type.String({ default: "file:data/messenger-endpoint.db", minLength: 1 }),
  auth_token: Type.Optional(Type.String()),
  /** Write a checked backup next to a local database before applying migrations to it (db/migrate.ts). */
  backup_before_migrate: Type.Boolean({ default: true }),
  /**
   * SQLite's page cache for a local database, in MiB (db/client.ts). It grows only as it is used;
   * a bigger one pays off with hundreds of thousands of contacts (docs/operations.md).
   */
  cache_mib: Type.Integer({ minimum: 1, maximum: 4096, default: 16 }),
});

export const GraphSettings = Type.Object({
  url: Type.String({ default: "https://graph.facebook.com", pattern: "^https?://" }),
  version: Type.String({ default: "v26.0", pattern: "^v\\d+\\.\\d+$" }),
  timeout_ms: PositiveMs(10_000, 120_000),
  min_retry_delay_ms: Type.Integer({ minimum: 1, maximum: 600_000, default: 1000 }),
  max_retry_delay_ms: PositiveMs(30_000),
  /** After a restart, how long to wait for the echo of a send a crash interrupted before sending it again. */
  resend_after_ms: PositiveMs(5_000, 600_000),
  retry_for_minutes: Type.Integer({ minimum: 1, maximum: 7 * 24 * 60, default: 60 }),
});

export const AdminSettings = Type.Object({
  api_keys: Type.Array(Type.String({ minLength: 16 }), { default: [] }),
});

export const LogSettings = Type.Object({
  level: Type.Union([Type.Literal("debug"), Type.Literal("info"), Type.Literal("warn"), Type.Literal("error")], {
    default: "info",
  }),
  format: Type.Union([Type.Literal("json"), Type.Literal("pretty")], { default: "json" }),
});

export const MetricsSettings = Type.Object({
  enabled: Type.Boolean({ default: true }),
});

export const SimulatorSettings = Type.Object({
  enabled: Type.Boolean({ default: false }),
  /**
   * More host names the simulator answers, besides loopback, the listen address and the host of
   * `server.public_url` (src/simulator/hosts.ts): a name (optionally with a port, which is ignored).
   */
  allowed_hosts: Type.Array(Type.String({ pattern: "^[^\\s/?#@\\\\]+$" }), { default: [] }),
});

/**
 * Scale-out (docs/scale-out.md): several instances on one database, the users split into
 * `partitions`, each leased by one instance for `lease_seconds` at a time and renewed.
 */
export const ClusterSettings = Type.Object({
  enabled: Type.Boolean({ default: false }),
  /** How many parts the users are split into: every instance must use the same number. */
  partitions: Type.Integer({ minimum: 1, maximum: 1024, default: 16 }),
  /** How long a lease lasts without renewal: how soon a dead instance's users are taken over. */
  lease_seconds: Type.Integer({ minimum: 3, maximum: 600, default: 15 }),
  /** This instance's name in the lease table (default: host name and process id). */
  instance_id: Type.Optional(Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$" })),
  /** How often an instance looks for work other instances stored for its users (milliseconds). */
  poll_ms: Type.Integer({ minimum: 10, maximum: 10_000, default: 200 }),
});

/**
 * A tool an `llm` flow offers its model (src/flows/llm-tools.ts, docs/flows.md): the model calls
 * it by `name` with arguments that follow `parameters` (a JSON Schema), and the endpoint makes an
 * HTTP call to `url` with them.
 */
export const LlmToolSettings = Type.Object({
  name: Type.String({ pattern: "^[A-Za-z0-9_-]{1,64}$" }),
  description: Type.String({ minLength: 1, maxLength: 1024 }),
  /** A JSON Schema of the arguments (an object schema); or `parameters_file`, a JSON file holding it. */
  parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  parameters_file: Type.Optional(Type.String({ minLength: 1 })),
  url: Type.String({ pattern: "^https?://" }),
  /** Default POST (src/flows/llm-tools.ts). */
  method: Type.Optional(Type.Union([Type.Literal("POST"), Type.Literal("PUT"), Type.Literal("PATCH")])),
  headers: Type.Optional(Type.Record(Type.String(), Type.String())),
  /** Sent as `Authorization: Bearer <api_key>`. */
  api_key: Type.Optional(Type.String({ minLength: 1 })),
});

/** One flow = one AI agent. Which fields apply depends on `kind`; see validate.ts. */
export const FlowSettings = Type.Object({
  kind: Type.Union([Type.Literal("http"), Type.Literal("script"), Type.Literal("llm")]),
  url: Type.Optional(Type.String({ pattern: "^https?://" })),
  timeout_ms: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
  headers: Type.Optional(Type.Record(Type.String(), Type.String())),
  module: Type.Optional(Type.String({ minLength: 1 })),
  model: Type.Optional(Type.String({ minLength: 1 })),
  api_key: Type.Optional(Type.String()),
  system_prompt: Type.Optional(Type.String()),
  history_turns: Type.Optional(Type.Integer({ minimum: 0, maximum: 200 })),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
  /** llm: the tools the model may call (docs/flows.md). */
  tools: Type.Optional(Type.Array(LlmToolSettings)),
  /** llm: how many times in one turn the model may call tools before it must answer in text. */
  max_tool_rounds: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
  /** llm: how long one tool call may take. */
  tool_timeout_ms: Type.Optional(Type.Integer({ minimum: 100, maximum: 120_000 })),
  /** llm: "openai" (default; any OpenAI-compatible API) or "azure" (Azure OpenAI: `url` is the deployment's URL). */
  provider: Type.Optional(Type.Union([Type.Literal("openai"), Type.Literal("azure")])),
  /** llm, provider "azure": the `api-version` query parameter, like "2024-10-21". */
  api_version: Type.Optional(Type.String({ minLength: 1 })),
  /** llm: how many times a request is tried again on 429, 5xx or a network error (src/flows/llm-call.ts). */
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
  /** llm: sent to the user when the model cannot answer, instead of failing the turn. */
  fallback_text: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
  /** llm: the built-in tools offered to the model: Messenger answers, handover, end_session, remember (src/flows/llm-builtins.ts). */
  builtin_tools: Type.Optional(Type.Array(Type.Union(LLM_BUILTIN_TOOLS.map((t) => Type.Literal(t))), { uniqueItems: true })),
  /** llm: the history's budget in estimated tokens (4 characters each); the oldest turns are left out beyond it. */
  history_tokens: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  /** llm: an answer longer than this is sent as several messages, split at paragraph boundaries. */
  message_max_chars: Type.Optional(Type.Integer({ minimum: 100, maximum: 2000 })),
});

export const PageSettings = Type.Object({
  id: Type.String({ pattern: "^[0-9]+$" }),
  access_token: Type.String({ minLength: 1 }),
  name: Type.Optional(Type.String()),
});

export const ProfileSettings = Type.Object({
  request_profile_data: Type.Boolean({ default: true }),
  update_contact_profiles: Type.Boolean({ default: true }),
  merge_contact_profiles: Type.Boolean({ default: false }),
});

export const MessengerSettings = Type.Object({
  typing_indicators: Type.Boolean({ default: true }),
  message_delay_ms: PositiveMs(0, 60_000),
  mark_seen: Type.Boolean({ default: false }),
});

export const SessionSettings = Type.Object({
  expiration_minutes: Type.Integer({ minimum: 0, maximum: 525_600, default: 30 }),
});

export const DataProtectionSettings = Type.Object({
  contact_profiles: Type.Boolean({ default: true }),
  collect_conversations: Type.Boolean({ default: true }),
  collect_analytics: Type.Boolean({ default: true }),
  mask_logging: Type.Boolean({ default: false }),
  mask_analytics: Type.Boolean({ default: false }),
  retention_days: Type.Integer({ minimum: 0, maximum: 3650, default: 30 }),
  /** Strip HTML from the user's text after the input transformer (and before NLU and the flow). */
  sanitize_input: Type.Boolean({ default: false }),
  /** In transcripts, links and images of user inputs kept as text, never as references to follow. */
  hide_external_references: Type.Boolean({ default: false }),
});

export const TransformerSettings = Type.Object({
  module: Type.Optional(Type.String({ minLength: 1 })),
  abort_on_error: Type.Boolean({ default: false }),
  input: Type.Boolean({ default: false }),
  output: Type.Boolean({ default: false }),
  execution_finished: Type.Boolean({ default: false }),
  inject: Type.Boolean({ default: false }),
  notify: Type.Boolean({ default: false }),
  /** handlePreNlu({ text, data, language }) → { text, data }, before the NLU connector (docs/nlu.md). */
  pre_nlu: Type.Boolean({ default: false }),
  /** handlePostNlu({ text, data, nluResult, connectorOutput }) → { data, nluResult }, after it. */
  post_nlu: Type.Boolean({ default: false }),
});

/** An intent or entity the operator declares for the `llm` NLU connector. */
const NluLabel = Type.Union([
  Type.String({ minLength: 1, maxLength: 100 }),
  Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }), description: Type.Optional(Type.String({ maxLength: 1000 })) }),
]);

/** The NLU connector (src/nlu/, docs/nlu.md): intent and entities in `input.nlu` before the flow runs. */
export const NluSettings = Type.Object({
  kind: Type.Union([Type.Literal("none"), Type.Literal("http"), Type.Literal("rasa"), Type.Literal("llm"), Type.Literal("script")], { default: "none" }),
  /** http: the NLU service; rasa: the Rasa server (POST {url}/model/parse); llm: the chat completions API's base URL. */
  url: Type.Optional(Type.String({ pattern: "^https?://" })),
  /** http: sent as `Authorization: Bearer`; rasa: the server's `?token=`; llm: the API key. */
  api_key: Type.Optional(Type.String({ minLength: 1 })),
  /** http, rasa: extra request headers. */
  headers: Type.Optional(Type.Record(Type.String(), Type.String())),
  /** llm: the model. */
  model: Type.Optional(Type.String({ minLength: 1 })),
  /** llm: the intents the model may choose from (a name, or { name, description }). */
  intents: Type.Array(NluLabel, { default: [] }),
  /** llm: the entity types the model may extract. */
  entities: Type.Array(NluLabel, { default: [] }),
  /** script: a module exporting getNluResult({ text, data, language }). */
  module: Type.Optional(Type.String({ minLength: 1 })),
  timeout_ms: Type.Integer({ minimum: 100, maximum: 60_000, default: 3000 }),
  /** Tries after the first, for a 5xx or a timeout. */
  retries: Type.Integer({ minimum: 0, maximum: 5, default: 1 }),
  /** An intent scored below this is no intent (`input.nlu.intent` null; the ranking keeps it). */
  min_score: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
  /** Run NLU on payloads (buttons, quick replies) too; by default their payload says it all. */
  nlu_payloads: Type.Boolean({ default: false }),
  /** When the NLU call fails: run the flow with `input.nlu = null` and `input.nlu_error` (continue), or not at all (skip_turn). */
  on_error: Type.Union([Type.Literal("continue"), Type.Literal("skip_turn")], { default: "continue" }),
});

/** Real-time translation (src/translation/, docs/translation.md): the user's language in, the flow's language out. */
export const TranslationSettings = Type.Object({
  provider: Type.Union(
    [Type.Literal("none"), Type.Literal("deepl"), Type.Literal("google"), Type.Literal("microsoft"), Type.Literal("libretranslate"), Type.Literal("llm")],
    { default: "none" },
  ),
  /** Another base URL than the provider's own (DeepL's free host, a LibreTranslate server, an LLM API). */
  url: Type.Optional(Type.String({ pattern: "^https?://" })),
  api_key: Type.Optional(Type.String({ minLength: 1 })),
  /** microsoft: the resource's region (Ocp-Apim-Subscription-Region). */
  region: Type.Optional(Type.String({ minLength: 1 })),
  /** llm: the model. */
  model: Type.Optional(Type.String({ minLength: 1 })),
  timeout_ms: Type.Integer({ minimum: 100, maximum: 60_000, default: 3000 }),
  /** Tries after the first, for a 5xx, a 429 or a timeout. */
  retries: Type.Integer({ minimum: 0, maximum: 5, default: 1 }),
  /** The language the flow is written in (default: the endpoint's locale). */
  flow_language: Type.Optional(Type.String({ pattern: "^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$" })),
  /** The user's language: fixed, or `auto` (detected from their first inputs, then locked). */
  user_language: Type.String({ default: "auto", pattern: "^(auto|[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?)$" }),
  /** With `auto`: after this many inputs the detected language is locked for the user. */
  lock_after: Type.Integer({ minimum: 1, maximum: 5, default: 3 }),
  /** Text between two markers is not translated, and the markers are removed. */
  marker: Type.String({ default: "**", minLength: 1, maxLength: 10 }),
  /** Remove the markers from every output, also where nothing is translated. */
  always_remove_markers: Type.Boolean({ default: false }),
  /** Translate payloads (buttons, quick replies) too. */
  translate_payloads: Type.Boolean({ default: false }),
  /** deepl: the glossary for the user's text (into the flow's language). */
  glossary_input: Type.Optional(Type.String({ minLength: 1 })),
  /** deepl: the glossary for the flow's replies. */
  glossary_output: Type.Optional(Type.String({ minLength: 1 })),
  /** deepl: the formality of the replies. */
  formality: Type.Optional(
    Type.Union([Type.Literal("default"), Type.Literal("more"), Type.Literal("less"), Type.Literal("prefer_more"), Type.Literal("prefer_less")]),
  ),
  /** Translations kept in the database this long (0: not kept). */
  cache_hours: Type.Number({ minimum: 0, maximum: 24 * 365, default: 24 }),
});

/** Handing a conversation to people (src/handover/). */
export const HandoverSettings = Type.Object({
  /** Where a flow's `handover` goes when it names no target: `page_inbox` (app 263902037430900) or an app id. */
  target: Type.String({ default: "page_inbox", pattern: "^(page_inbox|[0-9]+)$" }),
  /** Take the thread back after this many minutes without a reply from a person (0: never). Fractions allowed. */
  timeout_minutes: Type.Number({ minimum: 0, maximum: 10_080, default: 60 }),
  /** A person answering from another app (the Page Inbox) while the bot owns the thread pauses the bot for that user. */
  pause_on_human_reply: Type.Boolean({ default: true }),
  /** How long that pause lasts after the person's last message (the quiet time). Fractions allowed. */
  pause_minutes: Type.Number({ minimum: 0, maximum: 10_080, default: 30 }),
  /** Pass the thread to an app that sends `request_thread_control` (the Page Inbox when a person clicks to take over). */
  honour_requests: Type.Boolean({ default: true }),
});

/** A persistent menu item: a postback, a link, or (flattened, see messenger/profile.ts) a nested group. */
export const MenuItemSettings = Type.Object({
  type: Type.Union([Type.Literal("postback"), Type.Literal("web_url"), Type.Literal("nested")]),
  title: Type.String({ minLength: 1, maxLength: 30 }),
  payload: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
  url: Type.Optional(Type.String({ minLength: 1 })),
  webview_height_ratio: Type.Optional(Type.Union([Type.Literal("compact"), Type.Literal("tall"), Type.Literal("full")])),
  call_to_actions: Type.Optional(Type.Array(Type.Record(Type.String(), Type.Unknown()))),
});

/** The Page's Messenger profile (messenger/profile.ts): applied by serve and by POST /api/endpoints/{id}/messenger-profile. */
export const MessengerProfileSettings = Type.Object({
  get_started_payload: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
  /** Locale → text (at most 160 characters); a `default` entry is required. */
  greeting: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1, maxLength: 160 }))),
  persistent_menu: Type.Optional(
    Type.Array(
      Type.Object({
        locale: Type.String({ default: "default", minLength: 1 }),
        composer_input_disabled: Type.Boolean({ default: false }),
        call_to_actions: Type.Array(MenuItemSettings, { default: [] }),
      }),
    ),
  ),
  /** Questions shown before the first message (at most 4 per locale). */
  ice_breakers: Type.Optional(
    Type.Array(
      Type.Object({
        question: Type.String({ minLength: 1, maxLength: 80 }),
        payload: Type.String({ minLength: 1, maxLength: 1000 }),
        locale: Type.String({ default: "default", minLength: 1 }),
      }),
    ),
  ),
  whitelisted_domains: Type.Optional(Type.Array(Type.String({ pattern: "^https://" }), { maxItems: 50 })),
});

export const EndpointSettings = Type.Object({
  id: Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$" }),
  flow: Type.String({ minLength: 1 }),
  enabled: Type.Boolean({ default: true }),
  locale: Type.String({ default: "en", minLength: 2 }),
  verify_token: Type.String({ minLength: 1 }),
  app_id: Type.Optional(Type.String({ pattern: "^[0-9]+$" })),
  app_secret: Type.Optional(Type.String({ minLength: 1 })),
  pages: Type.Array(PageSettings, { minItems: 1 }),
  profiles: Type.Object(ProfileSettings.properties, { default: {} }),
  messenger: Type.Object(MessengerSettings.properties, { default: {} }),
  session: Type.Object(SessionSettings.properties, { default: {} }),
  data_protection: Type.Object(DataProtectionSettings.properties, { default: {} }),
  transformers: Type.Object(TransformerSettings.properties, { default: {} }),
  handover: Type.Object(HandoverSettings.properties, { default: {} }),
  nlu: Type.Object(NluSettings.properties, { default: {} }),
  translation: Type.Object(TranslationSettings.properties, { default: {} }),
  messenger_profile: Type.Optional(MessengerProfileSettings),
});

export const Settings = Type.Object({
  server: Type.Object(ServerSettings.properties, { default: {} }),
  storage: Type.Object(StorageSettings.properties, { default: {} }),
  graph: Type.Object(GraphSettings.properties, { default: {} }),
  admin: Type.Object(AdminSettings.properties, { default: {} }),
  log: Type.Object(LogSettings.properties, { default: {} }),
  metrics: Type.Object(MetricsSettings.properties, { default: {} }),
  simulator: Type.Object(SimulatorSettings.properties, { default: {} }),
  cluster: Type.Object(ClusterSettings.properties, { default: {} }),
  flows: Type.Record(Type.String({ pattern: "^[A-Za-z0-9_-]+$" }), FlowSettings, { default: {}, additionalProperties: false }),
  endpoints: Type.Array(EndpointSettings, { default: [] }),
});

export type Settings = Static<typeof Settings>;
export type FlowSettings = Static<typeof FlowSettings>;
export type LlmToolSettings = Static<typeof LlmToolSettings>;
export type EndpointSettings = Static<typeof EndpointSettings>;
export type ClusterSettings = Static<typeof ClusterSettings>;
export type PageSettings = Static<typeof PageSettings>;
export type MessengerProfileSettings = Static<typeof MessengerProfileSettings>;
export type HandoverSettings = Static<typeof HandoverSettings>;
export type NluSettings = Static<typeof NluSettings>;
export type TranslationSettings = Static<typeof TranslationSettings>;

/** Keys whose values are secrets: they may be given as `<key>_file`, and never reach a log line. */
export const SECRET_KEYS = ["app_secret", "access_token", "verify_token", "api_key", "api_keys", "auth_token"] as const;
