/**
 * The contact fields a flow writes (`contact` in its result, docs/flows.md): the change applied to
 * a contact profile within its limits, and the patch that stores a changed profile (people/store.ts).
 *
 * A field's value replaces the stored one whole; `null` deletes the field. The database applies
 * the patch to the profile it holds with SQLite's `json_patch` (JSON Merge Patch), first the
 * fields to remove, then those to set, so that a turn writes only the fields it changed and never
 * undoes a field another PSID of the same contact wrote meanwhile. Merge Patch leaves out `null`
 * members of an object it adds, so the change drops them here too: memory and database agree.
 */

/** The largest contact profile a flow's change may leave, as JSON (UTF-8 bytes). */
export const MAX_PROFILE_BYTES = 64 * 1024;
/** The length of a field name, in characters. */
export const MAX_FIELD_NAME = 64;

export type ContactChange = { ok: true; profile: Record<string, unknown>; changed: boolean } | { ok: false; problem: string };

/**
 * The profile with the flow's change applied (a new object; `profile` is left as it was), or why
 * the change is refused as a whole: a field name of 0 or more than 64 characters, a value that is
 * not JSON, or a profile that would grow past 64 KiB of JSON. The problem says how to fix it.
 */
export function applyContactChange(profile: Record<string, unknown>, change: Record<string, unknown>): ContactChange {
  const next: Record<string, unknown> = { ...profile };
  for (const [name, raw] of Object.entries(change)) {
    const length = [...name].length;
    if (length < 1 || length > MAX_FIELD_NAME)
      return { ok: false, problem: `a field name has ${length} characters; contact field names have 1 to ${MAX_FIELD_NAME}` };
    if (raw === undefined) continue;
    let value: unknown;
    try {
      value = raw === null ? null : JSON.parse(JSON.stringify(raw));
    } catch {
      return { ok: false, problem: "a value cannot be stored as JSON (a BigInt or a cycle, say): give strings, numbers, booleans, arrays or objects" };
    }
    if (value === null || isObject(value)) delete next[name]; // an object replaces the old value whole: it comes last, as in the database
    if (value !== null) put(next, name, withoutNullMembers(value));
  }
  const changed = JSON.stringify(next) !== JSON.stringify(profile);
  if (changed) {
    const bytes = jsonBytes(next);
    if (bytes > MAX_PROFILE_BYTES && bytes > jsonBytes(profile))
      return {
        ok: false,
        problem: `the contact profile would be ${bytes} bytes of JSON, over the limit of ${MAX_PROFILE_BYTES}: keep large data in your own storage with only a reference in the contact, or delete fields with null`,
      };
  }
  return { ok: true, profile: next, changed };
}

/**
 * The patch that turns the stored profile `from` into `to`: the fields to remove first (deleted,
 * or an object that must replace the old value instead of merging into it), each `null`, then the
 * fields to set. Empty objects when nothing changed.
 */
export function profilePatch(from: Record<string, unknown>, to: Record<string, unknown>): { remove: Record<string, null>; set: Record<string, unknown> } {
  const remove: Record<string, null> = {};
  const set: Record<string, unknown> = {};
  for (const name of Object.keys(from)) if (!Object.hasOwn(to, name)) put(remove, name, null);
  for (const [name, value] of Object.entries(to)) {
    const had = Object.hasOwn(from, name);
    if (had && JSON.stringify(from[name]) === JSON.stringify(value)) continue;
    if (had && isObject(value)) put(remove, name, null);
    put(set, name, value);
  }
  return { remove, set };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A value as JSON Merge Patch adds it: objects without their null members (arrays are taken as they are). */
function withoutNullMembers(value: unknown): unknown {
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [name, member] of Object.entries(value)) if (member !== null) put(out, name, withoutNullMembers(member));
  return out;
}

/** Sets an own field, also one named `__proto__` (an assignment would change the object's prototype). */
function put(target: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), "utf8");
}
