/**
 * The environment serve restarts itself with (src/cli/engine.ts): JavaScriptCore told the machine
 * has 4 GiB on a larger machine, and its fourth compiler tier off; for serve only, never over an
 * operator's own value, and once. (The restart itself is in the binary's smoke test:
 * test/smoke/binary.test.ts.)
 */
import { expect, test } from "bun:test";
import { ASSUMED_RAM_BYTES, FTL_VARIABLE, RAM_VARIABLE, RESTARTED_VARIABLE, engineEnvironment } from "../../../src/cli/engine.ts";

const env = { PATH: "/usr/bin", HOME: "/home/bot", EMPTY: "" };
const BIG = 24 * 1024 ** 3;
const SMALL = 2 * 1024 ** 3;

test("serve, named or by default, gets both variables with everything else kept", () => {
  for (const argv of [["serve"], [], ["serve", "--config", "bot.toml"], ["--port", "0"]]) {
    expect(engineEnvironment(argv, env, BIG)).toEqual({
      ...env,
      [RAM_VARIABLE]: String(ASSUMED_RAM_BYTES),
      [FTL_VARIABLE]: "0",
      [RESTARTED_VARIABLE]: "1",
    });
  }
  expect(ASSUMED_RAM_BYTES).toBe(4_294_967_296);
});

test("on a machine of 4 GiB or less only the compiler tier is set", () => {
  for (const ram of [SMALL, ASSUMED_RAM_BYTES]) {
    expect(engineEnvironment(["serve"], env, ram)).toEqual({ ...env, [FTL_VARIABLE]: "0", [RESTARTED_VARIABLE]: "1" });
  }
});

test("an operator's own value is kept, and the other variable still set", () => {
  expect(engineEnvironment(["serve"], { ...env, [RAM_VARIABLE]: "536870912" }, BIG)).toEqual({
    ...env,
    [RAM_VARIABLE]: "536870912",
    [FTL_VARIABLE]: "0",
    [RESTARTED_VARIABLE]: "1",
  });
  expect(engineEnvironment(["serve"], { ...env, [FTL_VARIABLE]: "1" }, BIG)).toEqual({
    ...env,
    [FTL_VARIABLE]: "1",
    [RAM_VARIABLE]: String(ASSUMED_RAM_BYTES),
    [RESTARTED_VARIABLE]: "1",
  });
});

test("other commands, a command line the CLI will refuse, nothing left to set, or restarted once: no restart", () => {
  for (const argv of [["version"], ["--version"], ["check"], ["migrate"], ["backup", "x.db"], ["help"], ["--help"], ["serve", "-h"]])
    expect(engineEnvironment(argv, env, BIG)).toBeNull();
  expect(engineEnvironment(["serve", "--no-such-flag"], env, BIG)).toBeNull();
  expect(engineEnvironment(["frobnicate"], env, BIG)).toBeNull();
  expect(engineEnvironment(["serve"], { ...env, [RAM_VARIABLE]: "536870912", [FTL_VARIABLE]: "1" }, BIG)).toBeNull();
  expect(engineEnvironment(["serve"], { ...env, [FTL_VARIABLE]: "0" }, SMALL)).toBeNull();
  // Restarted once already: never again, even if the runtime had hidden the engine's variables.
  expect(engineEnvironment(["serve"], { ...env, [RESTARTED_VARIABLE]: "1" }, BIG)).toBeNull();
});
