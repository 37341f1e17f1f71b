/**
 * The environment serve restarts itself with (src/cli/heap.ts): JavaScriptCore told the machine
 * has 4 GiB, for serve on a larger machine only, never over an operator's own value. (The restart itself is in the
 * binary's smoke test: test/smoke/binary.test.ts.)
 */
import { expect, test } from "bun:test";
import { ASSUMED_RAM_BYTES, RAM_VARIABLE, RESTARTED_VARIABLE, heapEnvironment } from "../../../src/cli/heap.ts";

const env = { PATH: "/usr/bin", HOME: "/home/bot", EMPTY: "" };
const BIG = 24 * 1024 ** 3;

test("serve, named or by default, gets the variable with everything else kept", () => {
  for (const argv of [["serve"], [], ["serve", "--config", "bot.toml"], ["--port", "0"]]) {
    expect(heapEnvironment(argv, env, BIG)).toEqual({ ...env, [RAM_VARIABLE]: String(ASSUMED_RAM_BYTES), [RESTARTED_VARIABLE]: "1" });
  }
  expect(ASSUMED_RAM_BYTES).toBe(4_294_967_296);
});

test("other commands, a command line the CLI will refuse, the operator's own value or a small machine: no restart", () => {
  for (const argv of [["version"], ["--version"], ["check"], ["migrate"], ["backup", "x.db"], ["help"]]) expect(heapEnvironment(argv, env, BIG)).toBeNull();
  expect(heapEnvironment(["serve", "--no-such-flag"], env, BIG)).toBeNull();
  expect(heapEnvironment(["frobnicate"], env, BIG)).toBeNull();
  expect(heapEnvironment(["serve"], { ...env, [RAM_VARIABLE]: "536870912" }, BIG)).toBeNull();
  expect(heapEnvironment(["serve"], env, ASSUMED_RAM_BYTES)).toBeNull();
  // Restarted once already: never again, even if the runtime had hidden the engine's variable.
  expect(heapEnvironment(["serve"], { ...env, [RESTARTED_VARIABLE]: "1" }, BIG)).toBeNull();
  expect(heapEnvironment(["serve"], env, 2 * 1024 ** 3)).toBeNull();
});
