/**
 * Facebook signs every webhook POST with `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of
 * the raw body bytes keyed with the App Secret. The bytes are verified exactly as received: Meta
 * signs its own escaped form (`\u00e9`, `\/`), which a parse-and-reserialize would change.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

const PREFIX = "sha256=";
// Meta sends the digest in lower-case hex; anything else is not its signature.
const HEX_DIGEST = /^[0-9a-f]{64}$/;

export function signBody(appSecret: string, body: Uint8Array | string): string {
  return PREFIX + createHmac("sha256", appSecret).update(body).digest("hex");
}

/** Constant-time check of an `X-Hub-Signature-256` header against the raw body. */
export function verifySignature(appSecret: string, body: Uint8Array, header: string | null | undefined): boolean {
  if (!header?.startsWith(PREFIX)) return false;
  const received = header.slice(PREFIX.length);
  if (!HEX_DIGEST.test(received)) return false;
  const expected = createHmac("sha256", appSecret).update(body).digest();
  // Both buffers are 32 bytes here, as timingSafeEqual requires.
  return timingSafeEqual(expected, Buffer.from(received, "hex"));
}
