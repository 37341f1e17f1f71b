/** An llm flow's provider, api_version, retries and fallback_text (config/schema.ts FlowSettings, validate.ts): errors name the key's path. */
import { afterAll, describe, expect, test } from "bun:test";
import { configFromToml, rejectedSettings, tempDir } from "../../helpers/index.ts";

const dir = tempDir("llm-provider-settings");
afterAll(() => dir.remove());

const ENDPOINT =
  '[[endpoints]]\nid = "shop"\nflow = "shop"\nverify_token = "verify-token"\npages = [ { id = "104857600012345", access_token = "EAAGtoken" } ]\n';
const flow = (extra: string, kind = "llm") =>
  `[flows.shop]\nkind = "${kind}"\nurl = "https://res.openai.azure.com/openai/deployments/gpt4o"\nmodel = "m"\n${extra}${ENDPOINT}`;
const problemsOf = (text: string) => rejectedSettings(text, { dir: dir.path }).problems;

describe("llm flow provider settings", () => {
  test("Azure with its api_version, retries and fallback_text load", () => {
    const shop = configFromToml(flow('provider = "azure"\napi_version = "2024-10-21"\nretries = 3\nfallback_text = "Sorry."\n'), { dir: dir.path }).flows.shop!;
    expect(shop).toMatchObject({ provider: "azure", api_version: "2024-10-21", retries: 3, fallback_text: "Sorry." });
  });

  test("azure without api_version, api_version without azure, keys of other kinds", () => {
    expect(problemsOf(flow('provider = "azure"\n'))).toEqual([
      'flows.shop.api_version: missing (required for provider "azure"): the Azure OpenAI API version, like "2024-10-21"',
    ]);
    expect(problemsOf(flow('api_version = "2024-10-21"\n'))).toEqual([
      'flows.shop.api_version: only for provider "azure": set provider = "azure", or remove api_version',
    ]);
    expect(problemsOf(flow('retries = 1\nfallback_text = "Sorry."\n', "http"))).toEqual([
      'flows.shop.retries: only for kind "llm" (this flow is "http")',
      'flows.shop.fallback_text: only for kind "llm" (this flow is "http")',
    ]);
  });

  test("an unknown provider and too many retries name their keys", () => {
    const problems = problemsOf(flow('provider = "anthropic"\nretries = 50\n'));
    expect(problems.some((p) => p.startsWith("flows.shop.provider"))).toBe(true);
    expect(problems.some((p) => p.startsWith("flows.shop.retries"))).toBe(true);
  });
});
