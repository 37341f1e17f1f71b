import { afterAll, describe, expect, test } from "bun:test";
import { validateSettings } from "../../../src/config/validate.ts";
import { configFromToml, rejectedSettings, tempDir } from "../../helpers/index.ts";

const dir = tempDir("validate");
dir.write("flows/demo.ts", "export default {};\n");
dir.write("transformers/support.ts", "export default {};\n");
afterAll(() => dir.remove());

const page = (id = "104857600012345") => `{ id = "${id}", access_token = "EAAGtoken" }`;
const endpoint = (id: string, flow: string, extra = "") =>
  `[[endpoints]]\nid = "${id}"\nflow = "${flow}"\nverify_token = "verify-token"\npages = [ ${page()} ]\n${extra}`;
const HTTP_FLOW = `[flows.support]\nkind = "http"\nurl = "http://127.0.0.1:5005/agent"\n`;

const problemsOf = (text: string) => rejectedSettings(text, { dir: dir.path }).problems;

describe("references and duplicates", () => {
  test("an unknown flow, with a suggestion", () => {
    expect(problemsOf(HTTP_FLOW + endpoint("support", "suport"))).toEqual([
      'endpoints[0].flow: no flow named "suport" (did you mean "support"?): define it as [flows.suport]',
    ]);
  });

  test("an unknown flow with nothing close", () => {
    const [problem] = problemsOf(HTTP_FLOW + endpoint("support", "billing-agent"));
    expect(problem).toBe('endpoints[0].flow: no flow named "billing-agent": define it as [flows.billing-agent]');
  });

  test("duplicate endpoint ids", () => {
    expect(problemsOf(HTTP_FLOW + endpoint("support", "support") + endpoint("other", "support") + endpoint("support", "support"))).toEqual([
      'endpoints[2].id: "support" is already used by endpoints[0]; endpoint ids must be unique',
    ]);
  });

  test("duplicate Page ids within an endpoint", () => {
    const text = `${HTTP_FLOW}[[endpoints]]\nid = "s"\nflow = "support"\nverify_token = "v"\npages = [ ${page("1")}, ${page("2")}, ${page("1")} ]\n`;
    expect(problemsOf(text)).toEqual(["endpoints[0].pages[2].id: Page 1 is already listed as pages[0]"]);
  });

  test("the same Page on two endpoints is allowed", () => {
    const config = configFromToml(HTTP_FLOW + endpoint("a", "support") + endpoint("b", "support"), { dir: dir.path });
    expect(config.endpoints.map((e) => e.pages[0]!.id)).toEqual(["104857600012345", "104857600012345"]);
  });
});

describe("what each flow kind needs", () => {
  test("http needs url", () => {
    expect(problemsOf(`[flows.a]\nkind = "http"\n`)).toEqual(['flows.a.url: missing (required for kind "http")']);
  });

  test("llm needs url and model", () => {
    expect(problemsOf(`[flows.a]\nkind = "llm"\n`)).toEqual([
      'flows.a.url: missing (required for kind "llm")',
      'flows.a.model: missing (required for kind "llm")',
    ]);
  });

  test("script needs module", () => {
    expect(problemsOf(`[flows.a]\nkind = "script"\n`)).toEqual(['flows.a.module: missing (required for kind "script")']);
  });

  test("an unknown built-in module", () => {
    expect(problemsOf(`[flows.a]\nkind = "script"\nmodule = "builtin:parrot"\n`)).toEqual([
      'flows.a.module: unknown built-in "builtin:parrot"; available: builtin:echo',
    ]);
  });

  test("a module file that does not exist, named absolutely in the message", () => {
    expect(problemsOf(`[flows.a]\nkind = "script"\nmodule = "flows/missing.ts"\n`)).toEqual([
      `flows.a.module: file not found: ${dir.join("flows/missing.ts")}`,
    ]);
  });

  test("an existing module file is accepted and made absolute; built-ins stay as they are", () => {
    const config = configFromToml(`[flows.a]\nkind = "script"\nmodule = "flows/demo.ts"\n[flows.b]\nkind = "script"\nmodule = "builtin:echo"\n`, {
      dir: dir.path,
    });
    expect(config.flows.a!.module).toBe(dir.join("flows/demo.ts"));
    expect(config.flows.b!.module).toBe("builtin:echo");
  });
});

describe("transformers", () => {
  test("a switch without a module", () => {
    const text = HTTP_FLOW + endpoint("support", "support", `[endpoints.transformers]\ninput = true\noutput = true\n`);
    expect(problemsOf(text)).toEqual(["endpoints[0].transformers.module: missing: input, output are switched on but no transformer module is named"]);
  });

  test("one switch without a module", () => {
    const text = HTTP_FLOW + endpoint("support", "support", `[endpoints.transformers]\nnotify = true\n`);
    expect(problemsOf(text)).toEqual(["endpoints[0].transformers.module: missing: notify is switched on but no transformer module is named"]);
  });

  test("a module file that does not exist", () => {
    const text = HTTP_FLOW + endpoint("support", "support", `[endpoints.transformers]\nmodule = "transformers/nope.ts"\ninput = true\n`);
    expect(problemsOf(text)).toEqual([`endpoints[0].transformers.module: file not found: ${dir.join("transformers/nope.ts")}`]);
  });

  test("an existing module is made absolute", () => {
    const text = HTTP_FLOW + endpoint("support", "support", `[endpoints.transformers]\nmodule = "transformers/support.ts"\ninput = true\n`);
    const config = configFromToml(text, { dir: dir.path });
    expect(config.endpoints[0]!.transformers.module).toBe(dir.join("transformers/support.ts"));
    expect(config.endpoints[0]!.transformers.input).toBe(true);
  });
});

describe("all cross-field problems at once", () => {
  test("are reported together", () => {
    const text =
      `[flows.a]\nkind = "http"\n[flows.b]\nkind = "script"\nmodule = "nope.ts"\n` +
      endpoint("x", "c") +
      endpoint("x", "a", `[endpoints.transformers]\ninject = true\n`);
    const problems = problemsOf(text);
    expect(problems).toEqual(
      expect.arrayContaining([
        'flows.a.url: missing (required for kind "http")',
        `flows.b.module: file not found: ${dir.join("nope.ts")}`,
        expect.stringMatching(/^endpoints\[0\]\.flow: no flow named "c"/),
        'endpoints[1].id: "x" is already used by endpoints[0]; endpoint ids must be unique',
        "endpoints[1].transformers.module: missing: inject is switched on but no transformer module is named",
      ]),
    );
    expect(problems).toHaveLength(5);
  });

  test("are reported together with schema problems", () => {
    const problems = problemsOf(`[server]\nport = "x"\n${HTTP_FLOW}${endpoint("support", "suport")}`);
    expect(problems).toContain('server.port: expected a whole number, got "x"');
    expect(problems.some((p) => p.startsWith("endpoints[0].flow:"))).toBe(true);
  });

  test("validateSettings itself returns no problems for a valid config", () => {
    const config = configFromToml(HTTP_FLOW + endpoint("support", "support"), { dir: dir.path });
    expect(validateSettings(config, dir.path)).toEqual([]);
  });
});

describe("security warnings", () => {
  test("a secret shorter than 6 characters is warned about: it cannot be kept out of the logs", async () => {
    const { securityWarnings } = await import("../../../src/config/validate.ts");
    const config = configFromToml(
      `${HTTP_FLOW}[[endpoints]]\nid = "s"\nflow = "support"\nverify_token = "12345"\napp_secret = "a-long-app-secret"\npages = [ ${page()} ]\n`,
      { dir: dir.path },
    );
    const warnings = securityWarnings(config);
    expect(warnings).toEqual([
      "endpoints[0].verify_token is only 5 characters long: a secret this short is easy to guess and cannot be kept out of the logs; use a long random value",
    ]);
  });
});

describe("NLU and translation", () => {
  const endpointWith = (tables: string) => `${HTTP_FLOW}${endpoint("support", "support")}${tables}`;
  /** The problems, or none when the settings are accepted. */
  const problemsOrNone = (text: string): string[] => {
    try {
      configFromToml(text, { dir: dir.path });
      return [];
    } catch {
      return problemsOf(text);
    }
  };

  test("each NLU kind names what it needs", () => {
    expect(problemsOrNone(endpointWith('[endpoints.nlu]\nkind = "http"\n'))).toEqual(['endpoints[0].nlu.url: missing (required for kind "http")']);
    expect(problemsOrNone(endpointWith('[endpoints.nlu]\nkind = "llm"\n'))).toEqual([
      'endpoints[0].nlu.url: missing (required for kind "llm")',
      'endpoints[0].nlu.model: missing (required for kind "llm")',
      'endpoints[0].nlu.intents: needs at least one intent for kind "llm": the model chooses among them',
    ]);
    expect(problemsOrNone(endpointWith('[endpoints.nlu]\nkind = "script"\nmodule = "nlu/missing.ts"\n'))).toEqual([
      `endpoints[0].nlu.module: file not found: ${dir.join("nlu/missing.ts")}`,
    ]);
    expect(problemsOrNone(endpointWith('[endpoints.nlu]\nkind = "rasa"\nurl = "http://127.0.0.1:5005"\nintents = ["order"]\n'))).toEqual([
      'endpoints[0].nlu.intents: only for kind "llm" (the connector is "rasa")',
    ]);
    expect(problemsOrNone(endpointWith('[endpoints.nlu]\nkind = "bert"\n'))[0]).toStartWith("endpoints[0].nlu.kind: expected one of");
  });

  test("NLU hooks need a connector; a valid llm connector passes", () => {
    const hooks = '[endpoints.transformers]\nmodule = "transformers/support.ts"\npre_nlu = true\n';
    expect(problemsOrNone(endpointWith(hooks))).toEqual([
      'endpoints[0].nlu.kind: pre_nlu / post_nlu are switched on in [endpoints.transformers] but no NLU connector is set: set kind ("http", "rasa", "llm" or "script")',
    ]);
    const llm =
      '[endpoints.nlu]\nkind = "llm"\nurl = "http://127.0.0.1:9/v1"\nmodel = "m"\nintents = ["order", { name = "refund", description = "money back" }]\n';
    expect(problemsOrNone(endpointWith(hooks + llm))).toEqual([]);
  });

  test("each translation provider names what it needs, and provider-only keys are refused elsewhere", () => {
    expect(problemsOrNone(endpointWith('[endpoints.translation]\nprovider = "deepl"\n'))).toEqual([
      'endpoints[0].translation.api_key: missing (required for provider "deepl"): its API key, or api_key_file',
    ]);
    expect(problemsOrNone(endpointWith('[endpoints.translation]\nprovider = "llm"\n'))).toEqual([
      `endpoints[0].translation.url: missing (required for provider "llm"): the chat completions API's base URL`,
      'endpoints[0].translation.model: missing (required for provider "llm")',
    ]);
    expect(problemsOrNone(endpointWith('[endpoints.translation]\nprovider = "google"\napi_key = "k-123456"\nformality = "less"\nregion = "eu"\n'))).toEqual([
      'endpoints[0].translation.formality: only for provider "deepl" (the provider is "google")',
      'endpoints[0].translation.region: only for provider "microsoft" (the provider is "google")',
    ]);
    expect(problemsOrNone(endpointWith('[endpoints.translation]\nprovider = "deepl"\napi_key = "k-123456"\nglossary_input = "g1"\n'))).toEqual([
      "endpoints[0].translation.glossary_input: a glossary needs a fixed user_language: DeepL's glossaries have one source language",
    ]);
    const limits = problemsOrNone(endpointWith('[endpoints.translation]\nprovider = "libretranslate"\nlock_after = 6\nuser_language = "german"\n'));
    expect(limits.map((p) => p.split(":")[0])).toEqual(["endpoints[0].translation.user_language", "endpoints[0].translation.lock_after"]);
    expect(limits[1]).toBe("endpoints[0].translation.lock_after: must be at most 5, got 6");
    expect(
      problemsOrNone(
        endpointWith(
          '[endpoints.translation]\nprovider = "microsoft"\napi_key = "k-123456"\nregion = "westeurope"\nuser_language = "de"\nflow_language = "en"\n',
        ),
      ),
    ).toEqual([]);
  });
});
