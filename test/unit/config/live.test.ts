import { afterAll, describe, expect, test } from "bun:test";
import { LiveSettings } from "../../../src/config/live.ts";
import { DEFAULT_ENDPOINT, configFromToml, settingsToml, tempDir, type SettingsSpec } from "../../helpers/index.ts";

const dir = tempDir("live");
afterAll(() => dir.remove());

const load = (spec: SettingsSpec = {}) => configFromToml(settingsToml(spec), { dir: dir.path });
const shop = { ...DEFAULT_ENDPOINT, id: "shop", pages: [{ id: "104857600011111", token: "EAAGshopTokenSECRET01" }] };
const nlu = '[endpoints.nlu]\nkind = "http"\nurl = "http://127.0.0.1:5005/nlu"';

describe("the live settings (config/live.ts)", () => {
  test("a step that refuses the new settings changes nothing", async () => {
    const live = new LiveSettings(load());
    let applied = false;
    live.onReload({
      prepare: async () => {
        throw new Error("flow module flows/x.ts does not load");
      },
      apply: () => void (applied = true),
    });
    const before = live.current;
    const outcome = await live.apply(load({ logLevel: "warn", endpoints: [DEFAULT_ENDPOINT, shop] }));
    expect(outcome).toEqual({ ok: false, problems: [{ path: "", message: "the new settings were not applied: flow module flows/x.ts does not load" }] });
    expect(applied).toBe(false);
    expect(live.current).toBe(before);
    expect([...live.endpoints.keys()]).toEqual(["support"]);
  });

  test("an endpoint removed leaves the endpoints but stays known; its secrets stay redacted, new ones join the same list", async () => {
    const live = new LiveSettings(load({ endpoints: [DEFAULT_ENDPOINT, shop] }));
    const secrets = live.secrets;
    expect(live.current.secrets).toBe(secrets);
    await live.apply(load({ endpoints: [{ ...DEFAULT_ENDPOINT, pages: [{ id: DEFAULT_ENDPOINT.pages![0]!.id, token: "EAAGrotatedSECRET999" }] }] }));
    expect([...live.endpoints.keys()]).toEqual(["support"]);
    expect([...live.known.keys()].sort()).toEqual(["shop", "support"]);
    expect(live.secrets).toBe(secrets);
    expect(secrets).toContain("EAAGrotatedSECRET999");
    expect(secrets).toContain("EAAGshopTokenSECRET01");
  });

  test("what is set up at start stays as it was: an endpoint keeps its NLU, an endpoint added has none until the restart", async () => {
    const live = new LiveSettings(load());
    const outcome = await live.apply(load({ endpoints: [DEFAULT_ENDPOINT, shop], extra: nlu }));
    expect(outcome).toMatchObject({ ok: true, applied: ['endpoints[id="shop"]'], needs_restart: ['endpoints[id="shop"].nlu'] });
    expect(live.endpoints.get("shop")!.nlu.kind).toBe("none");
    const withNlu = new LiveSettings(load({ extra: nlu }));
    await withNlu.apply(load({ logLevel: "warn" }));
    expect(withNlu.endpoints.get("support")!.nlu.kind).toBe("http");
    expect(withNlu.current.log.level).toBe("warn");
  });

  test("restart-only keys keep their values until the restart", async () => {
    const live = new LiveSettings(load());
    const outcome = await live.apply(load({ maxBodyBytes: 2048, logLevel: "info" }));
    expect(outcome).toEqual({ ok: true, applied: ["log.level"], needs_restart: ["server.max_body_bytes"], unchanged: false });
    expect(live.current.server.max_body_bytes).toBe(1_048_576);
    expect(live.current.log.level).toBe("info");
  });
});
