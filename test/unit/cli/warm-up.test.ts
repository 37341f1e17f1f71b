/**
 * The warm-up before listening (src/cli/warm-up.ts): its made-up turns run through a private app
 * and are answered by the stand-in in the process; nothing reaches the network.
 */
import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { warmUp } from "../../../src/cli/warm-up.ts";

describe("warmUp", () => {
  const realFetch = globalThis.fetch;
  afterEach(() => {
    globalThis.fetch = realFetch;
  });

  test("runs the turns it is asked for, each answered once by the private stand-in", async () => {
    const network = spyOn(globalThis, "fetch");
    const result = await warmUp(45);
    expect(result.error).toBeUndefined();
    expect(result.turns).toBe(45);
    expect(network).not.toHaveBeenCalled();
    network.mockRestore();
  });

  test("0 turns: nothing at all", async () => {
    const result = await warmUp(0);
    expect(result).toEqual({ turns: 0, ms: 0 });
  });
});
