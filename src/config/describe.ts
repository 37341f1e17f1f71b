/**
 * What the schema check says about a value, in the words of the settings file ("expected a whole
 * number, got \"abc\""), without showing secrets: where a secret goes, only the value's type is
 * named, and URLs are shown without their passwords and keys.
 */
import type { TSchema } from "@sinclair/typebox";
import { ValueErrorType, type ValueError } from "@sinclair/typebox/value";
import { displayUrl, redactUrlCredentials } from "../log/scrub.ts";
import { SECRET_KEYS } from "./schema.ts";
import { isPlainObject } from "./tree.ts";

/**
 * `secret`: the value sits where a secret goes, so the message names its type only ("expected a
 * string, got a number"): `verify_token = 12345` must not put 12345 on the screen or in a log.
 */
export function describeError(error: ValueError, secret: boolean): string {
  const got = secret ? describeType(error.value) : describeValue(error.value);
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return "missing";
    case ValueErrorType.Union: {
      const options = (error.schema.anyOf as TSchema[] | undefined)?.map((s) => JSON.stringify(s.const));
      return options ? `expected one of ${options.join(", ")}, got ${got}` : `unexpected value ${got}`;
    }
    case ValueErrorType.String:
      return `expected a string, got ${got}${typeof error.value === "number" || typeof error.value === "boolean" ? ": write it in quotes" : ""}`;
    case ValueErrorType.Boolean:
      return `expected true or false, got ${got}`;
    case ValueErrorType.Integer:
      return `expected a whole number, got ${got}`;
    case ValueErrorType.Number:
      return `expected a number, got ${got}`;
    case ValueErrorType.Array:
      return `expected a list, got ${got}`;
    case ValueErrorType.Object:
      return `expected a table, got ${got}`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `must be at least ${error.schema.minimum}, got ${got}`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `must be at most ${error.schema.maximum}, got ${got}`;
    case ValueErrorType.StringMinLength:
      return error.schema.minLength === 1 ? "must not be empty" : `must be at least ${error.schema.minLength} characters long`;
    case ValueErrorType.ArrayMinItems:
      return `needs at least ${error.schema.minItems} item${error.schema.minItems === 1 ? "" : "s"}`;
    case ValueErrorType.ObjectAdditionalProperties:
      return "names may contain only letters, digits, - and _";
    case ValueErrorType.StringPattern:
      return `${got} does not match ${patternHint(String(error.schema.pattern))}`;
    default:
      return `${error.message}, got ${got}`;
  }
}

function patternHint(pattern: string): string {
  switch (pattern) {
    case "^[0-9]+$":
      return "the expected form (digits only)";
    case "^https?://":
      return "the expected form (an http:// or https:// URL)";
    case "^(page_inbox|[0-9]+)$":
      return 'the expected form ("page_inbox" or an app id, digits only)';
    case "^[^\\s/?#@\\\\]+$":
      return 'the expected form (a host name such as "sim.example.com", without scheme or path)';
    case "^v\\d+\\.\\d+$":
      return 'the expected form (a Graph API version such as "v26.0")';
    default:
      return `the pattern ${pattern}`;
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") {
    // A URL may carry a password or a key (`https://user:pass@host/?code=…`): shown without them.
    const shown = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? displayUrl(value) : redactUrlCredentials(value);
    return JSON.stringify(shown.length > 40 ? `${shown.slice(0, 40)}…` : shown);
  }
  if (Array.isArray(value)) return "a list";
  if (isPlainObject(value)) return "a table";
  return String(value);
}

/** What kind of value this is, without the value: for secrets. */
function describeType(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return "a string";
  if (typeof value === "number") return "a number";
  if (typeof value === "boolean") return "a boolean";
  if (value instanceof Date) return "a date";
  if (Array.isArray(value)) return "a list";
  if (isPlainObject(value)) return "a table";
  return `a ${typeof value}`;
}

/**
 * Whether a schema error's JSON pointer (`/endpoints/0/verify_token`) points at a secret: a key of
 * SECRET_KEYS or its `_file` form, anything inside one (an item of `api_keys`), or a flow's
 * `headers`, whose values carry credentials under any name (`X-Functions-Key`, `Ocp-Apim-Subscription-Key` ...).
 */
export function isSecretPointer(pointer: string): boolean {
  const parts = pointer
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  const secret = (key: string) => (SECRET_KEYS as readonly string[]).includes(key.endsWith("_file") ? key.slice(0, -"_file".length) : key);
  return parts.some(secret) || (parts[0] === "flows" && parts[2] === "headers");
}
