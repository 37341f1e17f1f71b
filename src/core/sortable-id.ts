/**
 * Ids that sort by creation time: a prefix, the time in milliseconds (9 characters of base32hex,
 * 0-9 then a-v, which sorts as text in time order until the year 3084), then 72 random bits
 * (12 base64url characters), e.g. `s_1k3m5o7q9AbCdEfGhIjKl`.
 *
 * Session and contact ids are keys of indexes that every turn writes to (sessions, contacts,
 * contact_users, transcripts). A random id lands on a random page of each such index, and each
 * page a commit changes is written out whole, to the WAL and again by the checkpoint; ids made
 * in the same stretch of time land on the same last pages instead (docs/benchmarks.md, "Ids in
 * time order"). The random part keeps them unguessable and unique.
 */
import { randomBytes } from "node:crypto";

const TIME_DIGITS = 9;

export function sortableId(prefix: string, now: number = Date.now()): string {
  return `${prefix}${Math.max(0, Math.trunc(now)).toString(32).padStart(TIME_DIGITS, "0")}${randomBytes(9).toString("base64url")}`;
}
