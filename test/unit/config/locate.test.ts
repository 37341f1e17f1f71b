import { afterAll, describe, expect, test } from "bun:test";
import { CONFIG_ENV, DEFAULT_CONFIG_FILE, loadSettingsFile, locateSettingsFile } from "../../../src/config/load.ts";
import { demoConfig, DEMO_PAGE_ID } from "../../../src/config/demo.ts";
import { SettingsError } from "../../../src/config/problems.ts";
import { tempDir } from "../../helpers/index.ts";

const root = tempDir("locate");
afterAll(() => root.remove());

const withDefault = root.sub("with-default");
withDefault.write(DEFAULT_CONFIG_FILE, "");
const named = root.write("named/custom.toml", "");
const empty = root.sub("empty");

function thrown(fn: () => unknown): SettingsError {
  try {
    fn();
  } catch (error) {
    if (error instanceof SettingsError) return error;
    throw error;
  }
  throw new Error("did not throw");
}

describe("locateSettingsFile", () => {
  test("--config wins, resolved against the working folder", () => {
    expect(locateSettingsFile("../named/custom.toml", { [CONFIG_ENV]: "/nowhere.toml" }, withDefault.path)).toBe(named);
  });

  test("a --config file that does not exist is an error naming --config", () => {
    const e = thrown(() => locateSettingsFile("missing.toml", {}, empty.path));
    expect(e.problems[0]!.message).toContain("--config");
    expect(e.problems[0]!.message).toContain(empty.join("missing.toml"));
  });

  test("then $MESSENGER_ENDPOINT_CONFIG", () => {
    expect(locateSettingsFile(undefined, { [CONFIG_ENV]: named }, withDefault.path)).toBe(named);
    expect(locateSettingsFile(undefined, { [CONFIG_ENV]: "named/custom.toml" }, root.path)).toBe(named);
  });

  test("a $MESSENGER_ENDPOINT_CONFIG file that does not exist is an error naming the variable", () => {
    const e = thrown(() => locateSettingsFile(undefined, { [CONFIG_ENV]: "gone.toml" }, empty.path));
    expect(e.problems[0]!.message).toContain(`$${CONFIG_ENV}`);
  });

  test("then ./messenger-endpoint.toml", () => {
    expect(locateSettingsFile(undefined, {}, withDefault.path)).toBe(withDefault.join(DEFAULT_CONFIG_FILE));
    expect(locateSettingsFile(undefined, { [CONFIG_ENV]: "" }, withDefault.path)).toBe(withDefault.join(DEFAULT_CONFIG_FILE));
  });

  test("null when nothing is named and there is no default file", () => {
    expect(locateSettingsFile(undefined, {}, empty.path)).toBeNull();
  });
});

describe("loadSettingsFile", () => {
  test("records the file and resolves relative paths against its folder, not the working folder", () => {
    const file = root.write("site/conf/me.toml", `[storage]\nurl = "file:../state/x.db"\n`);
    const config = loadSettingsFile(file, {});
    expect(config.file).toBe(file);
    expect(config.dir).toBe(root.join("site/conf"));
    expect(config.storage.url).toBe(`file:${root.join("site/state/x.db")}`);
  });

  test("a file that cannot be read", () => {
    const e = thrown(() => loadSettingsFile(root.join("nope.toml"), {}));
    expect(e.problems[0]!.message).toStartWith("cannot read settings file");
    expect(e.file).toBe(root.join("nope.toml"));
  });

  test("uses the env it is given", () => {
    const file = root.write("env/me.toml", `[server]\nhost = "\${HOST_FOR_TEST}"\n`);
    expect(loadSettingsFile(file, { HOST_FOR_TEST: "10.9.8.7" }).server.host).toBe("10.9.8.7");
    expect(() => loadSettingsFile(file, {})).toThrow("HOST_FOR_TEST");
  });
});

describe("the built-in demo", () => {
  test("is a valid config with one endpoint on the echo flow and the simulator on", () => {
    const config = demoConfig(empty.path, {});
    expect(config.demo).toBe(true);
    expect(config.file).toBeNull();
    expect(config.simulator.enabled).toBe(true);
    expect(config.endpoints.map((e) => e.id)).toEqual(["demo"]);
    expect(config.endpoints[0]!.pages[0]!.id).toBe(DEMO_PAGE_ID);
    expect(config.flows.demo!.module).toBe("builtin:echo");
    expect(config.storage.url).toBe(`file:${empty.join("data/messenger-endpoint.db")}`);
  });

  test("has fresh secrets per start, registered for redaction", () => {
    const a = demoConfig(empty.path, {});
    const b = demoConfig(empty.path, {});
    expect(a.endpoints[0]!.app_secret).not.toBe(b.endpoints[0]!.app_secret);
    expect(a.secrets).toContain(a.endpoints[0]!.app_secret!);
    expect(a.secrets).toContain(a.endpoints[0]!.verify_token);
  });
});
