import { afterAll, describe, expect, test } from "bun:test";
import { diffSettings } from "../../../src/config/diff.ts";
import { DEFAULT_ENDPOINT, PAGE_ID, configFromToml, settingsToml, tempDir, type SettingsSpec } from "../../helpers/index.ts";

const dir = tempDir("diff");
afterAll(() => dir.remove());

const load = (spec: SettingsSpec = {}) => configFromToml(settingsToml(spec), { dir: dir.path });
const support = 'endpoints[id="support"]';

describe("the difference between two settings (config/diff.ts)", () => {
  test("the same settings: nothing changed", () => {
    expect(diffSettings(load(), load())).toEqual({ live: [], restart: [] });
  });

  test("the log level and the admin keys are live; server, storage, graph and cluster need a restart", () => {
    const before = load({ logLevel: "debug", extra: '[admin]\napi_keys = ["key-one-0123456789"]' });
    const after = load({
      logLevel: "warn",
      maxBodyBytes: 2048,
      storageUrl: "file:data/other.db",
      extra: '[admin]\napi_keys = ["key-two-0123456789"]\n[cluster]\nenabled = true\n[graph]\ntimeout_ms = 5000',
    });
    const diff = diffSettings(before, after);
    expect(diff.live.sort()).toEqual(["admin.api_keys", "log.level"]);
    expect(diff.restart.sort()).toEqual(["cluster.enabled", "graph.timeout_ms", "server.max_body_bytes", "storage.url"]);
  });

  test("a rotated Page token and an endpoint's settings are live, named by the ids; values never appear", () => {
    const before = load();
    const after = load({
      endpoints: [{ ...DEFAULT_ENDPOINT, pages: [{ id: PAGE_ID, token: "EAAGrotatedSECRET999" }, DEFAULT_ENDPOINT.pages![1]!] }],
      extra: "[endpoints.messenger]\nmessage_delay_ms = 250",
    });
    const diff = diffSettings(before, after);
    expect(diff.live.sort()).toEqual([`${support}.messenger.message_delay_ms`, `${support}.pages[id="${PAGE_ID}"].access_token`]);
    expect(diff.restart).toEqual([]);
    expect(JSON.stringify(diff)).not.toContain("EAAGrotatedSECRET999");
  });

  test("flows are live", () => {
    dir.write("flows/other.ts", "export default async () => ({ outputs: [] });");
    const after = configFromToml(settingsToml().replace('module = "builtin:echo"', 'module = "flows/other.ts"'), { dir: dir.path });
    expect(diffSettings(load(), after)).toEqual({ live: ["flows.echo.module"], restart: [] });
  });

  test("an endpoint added or removed is live; what an added endpoint sets up at start (NLU, translation, transformers) needs a restart", () => {
    const shop = { ...DEFAULT_ENDPOINT, id: "shop" };
    const one = load();
    const two = load({ endpoints: [DEFAULT_ENDPOINT, shop] });
    expect(diffSettings(one, two)).toEqual({ live: ['endpoints[id="shop"]'], restart: [] });
    expect(diffSettings(two, one)).toEqual({ live: ['endpoints[id="shop"]'], restart: [] });
    const withNlu = load({ endpoints: [DEFAULT_ENDPOINT, shop], extra: '[endpoints.nlu]\nkind = "http"\nurl = "http://127.0.0.1:5005/nlu"' });
    expect(diffSettings(one, withNlu)).toEqual({ live: ['endpoints[id="shop"]'], restart: ['endpoints[id="shop"].nlu'] });
  });

  test("an endpoint's NLU, translation, transformers and Messenger profile need a restart", () => {
    const after = load({ extra: '[endpoints.nlu]\nkind = "http"\nurl = "http://127.0.0.1:5005/nlu"' });
    const diff = diffSettings(load(), after);
    expect(diff.live).toEqual([]);
    expect(diff.restart.sort()).toEqual([`${support}.nlu.kind`, `${support}.nlu.url`]);
  });
});
