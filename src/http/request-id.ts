/**
 * Request ids for log lines and the `x-request-id` header: a random prefix per process and a
 * counter, so ids are unique across restarts and cost nothing per request.
 */
import { randomBytes } from "node:crypto";

const prefix = randomBytes(4).toString("hex");
let counter = 0;

export function nextRequestId(): string {
  return `${prefix}-${(++counter).toString(36)}`;
}
