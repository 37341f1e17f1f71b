/**
 * Rules the schema cannot express: what each flow kind needs, references between sections,
 * duplicates, and files that must exist. Each message says what to change.
 */
import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { Settings } from "./schema.ts";
import { llmFlowProblems } from "./llm-validate.ts";
import { closest, joinPath, type SettingsProblem } from "./problems.ts";
import { profileProblems } from "./messenger-profile.ts";
import { settingsFileWarning } from "./file-mode.ts";

export const BUILTIN_FLOW_MODULES = ["builtin:echo"] as const;

export function validateSettings(settings: Settings, dir: string): SettingsProblem[] {
  const problems: SettingsProblem[] = [];
  const problem = (path: (string | number)[], message: string) => problems.push({ path: joinPath(path), message });
  const fileMustExist = (path: (string | number)[], file: string) => {
    const abs = isAbsolute(file) ? file : resolve(dir, file);
    if (!existsSync(abs)) problem(path, `file not found: ${abs}`);
  };

  for (const [name, flow] of Object.entries(settings.flows)) {
    const at = (key: string) => ["flows", name, key];
    const requires = (key: "url" | "module" | "model") => {
      if (!flow[key]) problem(at(key), `missing (required for kind "${flow.kind}")`);
    };
    if (flow.kind === "http") requires("url");
    if (flow.kind === "llm") {
      requires("url");
      requires("model");
      for (const p of llmFlowProblems(flow, dir)) problem(["flows", name, ...p.path], p.message);
      if (flow.provider === "azure" && !flow.api_version) {
        problem(at("api_version"), 'missing (required for provider "azure"): the Azure OpenAI API version, like "2024-10-21"');
      }
      if (flow.provider !== "azure" && flow.api_version !== undefined) {
        problem(at("api_version"), 'only for provider "azure": set provider = "azure", or remove api_version');
      }
    } else {
      for (const key of [
        "tools",
        "max_tool_rounds",
        "tool_timeout_ms",
        "provider",
        "api_version",
        "retries",
        "fallback_text",
        "builtin_tools",
        "history_tokens",
        "message_max_chars",
      ] as const) {
        if (flow[key] !== undefined) problem(at(key), `only for kind "llm" (this flow is "${flow.kind}")`);
      }
    }
    if (flow.kind === "script") {
      requires("module");
      if (flow.module?.startsWith("builtin:")) {
        if (!(BUILTIN_FLOW_MODULES as readonly string[]).includes(flow.module)) {
          problem(at("module"), `unknown built-in ${JSON.stringify(flow.module)}; available: ${BUILTIN_FLOW_MODULES.join(", ")}`);
        }
      } else if (flow.module) {
        fileMustExist(at("module"), flow.module);
      }
    }
  }

  const endpointIds = new Map<string, number>();
  settings.endpoints.forEach((endpoint, i) => {
    const at = (...rest: (string | number)[]) => ["endpoints", i, ...rest];
    const earlier = endpointIds.get(endpoint.id);
    if (earlier !== undefined) problem(at("id"), `"${endpoint.id}" is already used by endpoints[${earlier}]; endpoint ids must be unique`);
    else endpointIds.set(endpoint.id, i);

    if (!settings.flows[endpoint.flow]) {
      const guess = closest(endpoint.flow, Object.keys(settings.flows));
      problem(at("flow"), `no flow named "${endpoint.flow}"${guess ? ` (did you mean "${guess}"?)` : ""}: define it as [flows.${endpoint.flow}]`);
    }

    const pageIds = new Map<string, number>();
    endpoint.pages.forEach((page, j) => {
      const other = pageIds.get(page.id);
      if (other !== undefined) problem(at("pages", j, "id"), `Page ${page.id} is already listed as pages[${other}]`);
      else pageIds.set(page.id, j);
    });

    if (endpoint.messenger_profile) {
      for (const p of profileProblems(endpoint.messenger_profile)) problem(at(...p.path), p.message);
    }

    const t = endpoint.transformers;
    const switchedOn = (["input", "output", "execution_finished", "inject", "notify", "pre_nlu", "post_nlu"] as const).filter((k) => t[k]);
    if (t.module) fileMustExist(at("transformers", "module"), t.module);
    else if (switchedOn.length > 0)
      problem(
        at("transformers", "module"),
        `missing: ${switchedOn.join(", ")} ${switchedOn.length === 1 ? "is" : "are"} switched on but no transformer module is named`,
      );
    if ((t.pre_nlu || t.post_nlu) && endpoint.nlu.kind === "none") {
      problem(
        at("nlu", "kind"),
        `pre_nlu / post_nlu are switched on in [endpoints.transformers] but no NLU connector is set: set kind ("http", "rasa", "llm" or "script")`,
      );
    }

    // The NLU connector (docs/nlu.md): what each kind needs.
    const nlu = endpoint.nlu;
    const nluNeeds = (key: "url" | "model" | "module") => {
      if (!nlu[key]) problem(at("nlu", key), `missing (required for kind "${nlu.kind}")`);
    };
    if (nlu.kind === "http" || nlu.kind === "rasa" || nlu.kind === "llm") nluNeeds("url");
    if (nlu.kind === "llm") {
      nluNeeds("model");
      if (nlu.intents.length === 0) problem(at("nlu", "intents"), 'needs at least one intent for kind "llm": the model chooses among them');
    }
    if (nlu.kind === "script") {
      nluNeeds("module");
      if (nlu.module) fileMustExist(at("nlu", "module"), nlu.module);
    }
    if (nlu.kind !== "llm" && (nlu.model || nlu.intents.length > 0 || nlu.entities.length > 0)) {
      problem(at("nlu", nlu.model ? "model" : nlu.intents.length > 0 ? "intents" : "entities"), `only for kind "llm" (the connector is "${nlu.kind}")`);
    }

    // The translation provider (docs/translation.md): what each needs.
    const tr = endpoint.translation;
    if ((tr.provider === "deepl" || tr.provider === "google" || tr.provider === "microsoft") && !tr.api_key) {
      problem(at("translation", "api_key"), `missing (required for provider "${tr.provider}"): its API key, or api_key_file`);
    }
    if (tr.provider === "llm") {
      if (!tr.url) problem(at("translation", "url"), 'missing (required for provider "llm"): the chat completions API\'s base URL');
      if (!tr.model) problem(at("translation", "model"), 'missing (required for provider "llm")');
    }
    for (const key of ["glossary_input", "glossary_output", "formality"] as const) {
      if (tr[key] !== undefined && tr.provider !== "deepl") problem(at("translation", key), `only for provider "deepl" (the provider is "${tr.provider}")`);
    }
    if (tr.region !== undefined && tr.provider !== "microsoft")
      problem(at("translation", "region"), `only for provider "microsoft" (the provider is "${tr.provider}")`);
    if (tr.glossary_input !== undefined && tr.user_language === "auto") {
      problem(at("translation", "glossary_input"), "a glossary needs a fixed user_language: DeepL's glossaries have one source language");
    }
  });

  return problems;
}

/**
 * Valid settings that an operator of a public bot should still hear about. Given the loaded
 * settings' file and secrets, also a settings file others can read (file-mode.ts).
 */
export function securityWarnings(config: Settings & { file?: string | null; secrets?: readonly string[] }): string[] {
  const warnings: string[] = config.endpoints
    .filter((e) => !e.app_secret)
    .map(
      (e) =>
        `endpoints[${config.endpoints.indexOf(e)}].app_secret is not set: endpoint ${e.id} accepts unsigned webhooks from anyone; set it to the App Secret`,
    );
  // Secrets shorter than this are not taken out of log lines (src/log/logger.ts): they would
  // redact ordinary words. A real App secret, verify token or Page token is much longer.
  const short = (path: string, value: string | undefined) => {
    if (value !== undefined && value.length < 6) {
      warnings.push(
        `${path} is only ${value.length} characters long: a secret this short is easy to guess and cannot be kept out of the logs; use a long random value`,
      );
    }
  };
  config.endpoints.forEach((e, i) => {
    short(`endpoints[${i}].app_secret`, e.app_secret);
    short(`endpoints[${i}].verify_token`, e.verify_token);
    for (const [j, p] of e.pages.entries()) short(`endpoints[${i}].pages[${j}].access_token`, p.access_token);
  });
  const readable = settingsFileWarning(config.file ?? null, config.secrets ?? []);
  return readable ? [...warnings, readable] : warnings;
}
