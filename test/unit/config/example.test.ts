/** The example settings file is the manual: it must stay valid and use no unknown key. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { loadSettingsFile } from "../../../src/config/load.ts";
import { SettingsError } from "../../../src/config/problems.ts";

const EXAMPLE = join(import.meta.dir, "..", "..", "..", "examples", "messenger-endpoint.toml");
const ENV = {
  FB_VERIFY_TOKEN: "verify-token-x",
  FB_APP_SECRET: "app-secret-xyz",
  FB_PAGE_TOKEN: "EAAG-page-token",
  ADMIN_API_KEY: "admin-key-0123456789abcdef",
  AGENT_TOKEN: "agent-token-xyz",
};

describe("examples/messenger-endpoint.toml", () => {
  test("is valid with its variables set, and has no unknown key", () => {
    const config = loadSettingsFile(EXAMPLE, ENV);
    expect(config.warnings).toEqual([]);
    expect(config.endpoints.map((e) => e.id)).toEqual(["support"]);
    expect(Object.keys(config.flows).sort()).toEqual(["assistant", "demo", "support"]);
    expect(config.storage.url).toBe(`file:${join(EXAMPLE, "..", "data", "messenger-endpoint.db")}`);
  });

  test("names each required variable when it is unset", () => {
    try {
      loadSettingsFile(EXAMPLE, {});
      throw new Error("accepted");
    } catch (error) {
      expect(error).toBeInstanceOf(SettingsError);
      expect((error as SettingsError).problems.map((p) => p.path)).toEqual([
        "admin.api_keys[0]",
        "flows.support.headers.Authorization",
        "endpoints[0].verify_token",
        "endpoints[0].app_secret",
        "endpoints[0].pages[0].access_token",
      ]);
    }
  });
});
