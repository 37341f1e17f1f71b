import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { boundedJson, deeperThan } from "../../../src/webhook/bounded-json.ts";
import { fixtureJson } from "../../helpers/index.ts";

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

function nested(depth: number, leaf: unknown = 1): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { k: v };
  return v;
}

describe("boundedJson", () => {
  test("writes what JSON.stringify writes, with its sha256", () => {
    const values = [
      fixtureJson("batched"),
      fixtureJson("attachments"),
      { a: [1, "two", null, true, false, -0.5, 1e21], "": {}, "k\u0000\ud800": '\u2028 "q" \\ /', __proto__x: [] },
      JSON.parse('{"__proto__": {"x": 1}, "n": [[], [[]], {}]}'),
      "just a string",
      42,
      null,
      [],
    ];
    for (const value of values) {
      const expected = JSON.stringify(value);
      const got = boundedJson(value, 1_000_000);
      expect(got).toEqual({ text: expected, truncated: false, length: expected.length, sha256: sha256(expected) });
    }
  });

  test("keeps the first `limit` characters, and hashes the whole", () => {
    const value = { text: "x".repeat(1000), list: Array.from({ length: 100 }, (_, i) => i) };
    const whole = JSON.stringify(value);
    const got = boundedJson(value, 100);
    expect(got).toEqual({ text: whole.slice(0, 100), truncated: true, length: whole.length, sha256: sha256(whole) });
  });

  test("a value nested 200,000 levels deep, which JSON.stringify cannot write", () => {
    const value = nested(200_000);
    expect(() => JSON.stringify(value)).toThrow(RangeError);
    const got = boundedJson(value, 64);
    expect(got.truncated).toBe(true);
    expect(got.text).toBe('[{"k":[{"k":[{"k":[{"k":[{"k":[{"k":[{"k":[{"k":[{"k":[{"k":[{"k":'.slice(0, 64));
    expect(got.length).toBe(100_000 * '[{"k":'.length + 1 + 100_000 * "}]".length);
  });
});

describe("deeperThan", () => {
  test("counts levels of objects and lists; scalars are 0", () => {
    expect(deeperThan(1, 0)).toBe(false);
    expect(deeperThan({}, 0)).toBe(true);
    expect(deeperThan({}, 1)).toBe(false);
    expect(deeperThan(nested(10), 10)).toBe(false);
    expect(deeperThan(nested(11), 10)).toBe(true);
    expect(deeperThan({ wide: Array.from({ length: 1000 }, () => ({ a: [1] })) }, 4)).toBe(false);
    expect(deeperThan({ wide: [1, 2, { a: [[1]] }] }, 4)).toBe(true);
  });

  test("a value nested 1,000,000 levels deep", () => {
    expect(deeperThan(nested(1_000_000), 64)).toBe(true);
  });
});
