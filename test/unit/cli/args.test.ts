import { describe, expect, test } from "bun:test";
import { parseArgs, UsageError } from "../../../src/cli/args.ts";

describe("parseArgs", () => {
  test("no arguments is serve", () => {
    expect(parseArgs([])).toEqual({ command: "serve", explicit: false, positional: [], help: false });
  });

  test("a command, positional arguments and --config in both spellings", () => {
    expect(parseArgs(["backup", "out.db", "--config", "x.toml"])).toEqual({
      command: "backup",
      explicit: true,
      positional: ["out.db"],
      config: "x.toml",
      help: false,
    });
    expect(parseArgs(["--config=x.toml", "check"])).toMatchObject({ command: "check", config: "x.toml" });
  });

  test("--version and -v anywhere", () => {
    expect(parseArgs(["--version"]).command).toBe("version");
    expect(parseArgs(["check", "-v"]).command).toBe("version");
  });

  test("--help and -h", () => {
    expect(parseArgs(["restore", "--help"])).toMatchObject({ command: "restore", help: true });
    expect(parseArgs(["-h"])).toMatchObject({ command: "serve", help: true });
  });

  test("--port and --host", () => {
    expect(parseArgs(["serve", "--port", "0", "--host", "::1"])).toMatchObject({ port: 0, host: "::1" });
    expect(() => parseArgs(["--port", "http"])).toThrow(UsageError);
    expect(() => parseArgs(["--port", "70000"])).toThrow("--port must be a whole number");
  });

  test("--adopt for serve (also as the default command) and migrate only", () => {
    expect(parseArgs(["migrate", "--adopt"])).toMatchObject({ command: "migrate", adopt: true });
    expect(parseArgs(["--adopt"])).toMatchObject({ command: "serve", adopt: true });
    expect(parseArgs(["serve"]).adopt).toBeUndefined();
    expect(() => parseArgs(["restore", "b.db", "--adopt"])).toThrow("--adopt is for serve and migrate, not restore");
  });

  test("usage errors", () => {
    expect(() => parseArgs(["frobnicate"])).toThrow('unknown command "frobnicate"');
    expect(() => parseArgs(["--verbose"])).toThrow("unknown option --verbose");
    expect(() => parseArgs(["-x"])).toThrow("unknown option -x");
    expect(() => parseArgs(["check", "--config"])).toThrow("--config needs a value");
    expect(() => parseArgs(["check", "--config="])).toThrow("--config needs a value");
  });
});
