/**
 * `mask_logging` (docs/people.md): user text, data and ids are written to logs as `*****`. Log lines
 * about a user bind `user` through `userFields`; messages that may quote user or agent text
 * (flow errors, converter warnings) go through `maskMessage`.
 */
import type { LogFields } from "./logger.ts";
import type { UserKey } from "../core/user-key.ts";

export const MASK = "*****";

/** The fields that name a user in a log line. */
export function userFields(key: UserKey, mask: boolean): LogFields {
  return { endpoint: key.endpointId, page: key.pageId, user: mask ? MASK : key.userId };
}

/** Quoted text, and whatever an agent answered, replaced by `*****` when masking. */
export function maskMessage(message: string, mask: boolean): string {
  if (!mask) return message;
  return message.replace(/"(?:[^"\\]|\\.)*"/g, `"${MASK}"`).replace(/((?:answered HTTP \d+|not JSON|threw): ).*$/s, `$1${MASK}`);
}
