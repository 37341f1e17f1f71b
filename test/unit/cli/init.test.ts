/** The settings `init` writes (src/cli/init.ts), made from the manual embedded in the binary. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initialSettings, randomSecret } from "../../../src/cli/init.ts";

const MANUAL = readFileSync(join(import.meta.dir, "..", "..", "..", "examples", "messenger-endpoint.toml"), "utf8");

describe("initialSettings", () => {
  test("is the manual with the two secrets, the echo flow and ${FB_PAGE_ID} put in", () => {
    const text = initialSettings("VERIFY-0123456789abcdef", "ADMIN-0123456789abcdef", "2026-01-02");
    expect(text).toContain('verify_token = "VERIFY-0123456789abcdef"');
    expect(text).toContain('api_keys = ["ADMIN-0123456789abcdef"]');
    expect(text).toContain("Written by `messenger-endpoint init` on 2026-01-02.");
    expect(text).toContain('{ id = "${FB_PAGE_ID}"');
    expect(text).not.toContain("${ADMIN_API_KEY}");
    expect(text).not.toContain("${FB_VERIFY_TOKEN}");
    // Every other line of the manual is kept: the file is still the manual.
    const kept = MANUAL.split("\n").filter((line) => text.includes(line));
    expect(MANUAL.split("\n").length - kept.length).toBeLessThanOrEqual(8);
  });

  test("the embedded manual is examples/messenger-endpoint.toml", () => {
    expect(initialSettings("v".repeat(20), "a".repeat(20), "d")).toBe(initialSettings("v".repeat(20), "a".repeat(20), "d", MANUAL));
  });

  test("a manual that no longer has a line to replace is refused, naming the line", () => {
    const changed = MANUAL.replace('verify_token = "${FB_VERIFY_TOKEN}"', 'verify_token = "${VERIFY}"');
    expect(() => initialSettings("v", "a", "d", changed)).toThrow('0 copies of "verify_token = \\"${FB_VERIFY_TOKEN}\\""');
  });

  test("random secrets: 43 base64url characters, different each time", () => {
    const a = randomSecret();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(randomSecret()).not.toBe(a);
  });
});
