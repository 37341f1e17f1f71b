import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { signBody, verifySignature } from "../../../src/webhook/signature.ts";

// The body exactly as Meta escapes it (it signs its own escaped form). `\u00e9` and `\/` are literal
// backslash sequences in the bytes, not characters.
const SECRET = "test_app_secret_0123";
const VECTOR = String.raw`{"object":"page","entry":[{"id":"104857600012345","time":1767225600123,"messaging":[{"sender":{"id":"6301234567890123"},"recipient":{"id":"104857600012345"},"timestamp":1767225599876,"message":{"mid":"m_test_0001","text":"caf\u00e9 http:\/\/x.test\/a"}}]}]}`;
const VECTOR_SHA256 = "sha256=a351a1f2fe2b6b20d78d042350731d36683cec725541b947588df10294f304b3";
const RESERIALIZED_SHA256 = "sha256=183532a67b168544a14d32eae0f098588049548a1d8a209c772ff9b3d5b8c378";

const bytes = (s: string) => new TextEncoder().encode(s);
const body = bytes(VECTOR);

describe("the Meta test vector", () => {
  test("is the exact 257 bytes with the escaped sequences", () => {
    expect(body.byteLength).toBe(257);
    expect(VECTOR).toContain("caf\\u00e9 http:\\/\\/x.test\\/a");
    expect(VECTOR).not.toContain("é");
  });

  test("signs to the documented digest", () => {
    expect(signBody(SECRET, body)).toBe(VECTOR_SHA256);
    expect(signBody(SECRET, VECTOR)).toBe(VECTOR_SHA256);
  });

  test("verifies over the raw bytes", () => {
    expect(verifySignature(SECRET, body, VECTOR_SHA256)).toBe(true);
  });

  test("the re-serialized JSON has another digest and does not verify", () => {
    const reserialized = bytes(JSON.stringify(JSON.parse(VECTOR)));
    expect(new TextDecoder().decode(reserialized)).toContain("café http://x.test/a");
    expect(signBody(SECRET, reserialized)).toBe(RESERIALIZED_SHA256);
    expect(verifySignature(SECRET, reserialized, VECTOR_SHA256)).toBe(false);
  });
});

describe("verifySignature rejects", () => {
  const digest = VECTOR_SHA256.slice("sha256=".length);

  test("a missing header", () => {
    expect(verifySignature(SECRET, body, undefined)).toBe(false);
    expect(verifySignature(SECRET, body, null)).toBe(false);
    expect(verifySignature(SECRET, body, "")).toBe(false);
  });

  test("the legacy sha1= header, even with a sha1 HMAC of the body", () => {
    expect(verifySignature(SECRET, body, "sha1=4cbee9751f3a0028ec46234cc75bca2caa1a0eb3")).toBe(false);
    expect(verifySignature(SECRET, body, `sha1=${digest}`)).toBe(false);
  });

  test("a prefix in another case or with spaces", () => {
    expect(verifySignature(SECRET, body, `SHA256=${digest}`)).toBe(false);
    expect(verifySignature(SECRET, body, ` sha256=${digest}`)).toBe(false);
    expect(verifySignature(SECRET, body, `sha256= ${digest}`)).toBe(false);
    expect(verifySignature(SECRET, body, digest)).toBe(false);
  });

  test("an upper-case hex digest (Meta sends lower case)", () => {
    expect(verifySignature(SECRET, body, `sha256=${digest.toUpperCase()}`)).toBe(false);
  });

  test("a short, long or non-hex digest", () => {
    expect(verifySignature(SECRET, body, `sha256=${digest.slice(0, 63)}`)).toBe(false);
    expect(verifySignature(SECRET, body, `sha256=${digest.slice(0, 32)}`)).toBe(false);
    expect(verifySignature(SECRET, body, `sha256=${digest}0`)).toBe(false);
    expect(verifySignature(SECRET, body, `sha256=${digest}${digest}`)).toBe(false);
    expect(verifySignature(SECRET, body, `sha256=${"g".repeat(64)}`)).toBe(false);
    expect(verifySignature(SECRET, body, `sha256=${digest.slice(0, 62)}zz`)).toBe(false);
    expect(verifySignature(SECRET, body, "sha256=")).toBe(false);
  });

  test("a digest that differs only in its last hex digit (a prefix comparison would take it)", () => {
    const last = digest.at(-1)!;
    for (const other of "0123456789abcdef") {
      if (other !== last) expect(verifySignature(SECRET, body, `sha256=${digest.slice(0, -1)}${other}`)).toBe(false);
    }
    expect(verifySignature(SECRET, body, `sha256=${digest}`)).toBe(true);
  });

  test("a digest made with another secret", () => {
    expect(verifySignature("another_app_secret", body, VECTOR_SHA256)).toBe(false);
    expect(verifySignature(SECRET, body, signBody("another_app_secret", body))).toBe(false);
  });

  test("a digest of another body, or a one-byte change", () => {
    const changed = bytes(VECTOR.replace("m_test_0001", "m_test_0002"));
    expect(verifySignature(SECRET, changed, VECTOR_SHA256)).toBe(false);
    expect(verifySignature(SECRET, bytes(`${VECTOR}\n`), VECTOR_SHA256)).toBe(false);
  });

  test("a plain sha256 of the body (not an HMAC)", () => {
    const plain = createHash("sha256").update(body).digest("hex");
    expect(verifySignature(SECRET, body, `sha256=${plain}`)).toBe(false);
  });
});

describe("signBody", () => {
  test("gives lower-case hex with the sha256= prefix, for bytes and strings alike", () => {
    const s = signBody("k", "{}");
    expect(s).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(signBody("k", bytes("{}"))).toBe(s);
    expect(verifySignature("k", bytes("{}"), s)).toBe(true);
  });

  test("an empty body still has a verifiable signature", () => {
    expect(verifySignature("k", new Uint8Array(0), signBody("k", ""))).toBe(true);
  });
});
