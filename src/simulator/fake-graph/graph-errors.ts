/**
 * Graph's errors as the fake throws them: a handler throws a `GraphError` (`graphFail`, `invalid`,
 * `unsupported`, or a scripted failure) and the router answers it with Graph's error envelope
 * (answers.ts). Messages, codes and subcodes are Graph's own.
 */
import type { ScriptedFailure } from "./types.ts";

export const WINDOW_MESSAGE =
  "(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview";

/** Graph's message for a code, used when a scripted failure gives none. */
export const DEFAULT_MESSAGES: Record<number, string> = {
  1: "An unknown error has occurred.",
  2: "An unexpected error has occurred. Please retry your request later.",
  4: "(#4) Application request limit reached",
  10: WINDOW_MESSAGE,
  17: "(#17) User request limit reached",
  32: "(#32) Page request limit reached",
  100: "(#100) Invalid parameter",
  190: "Invalid OAuth access token.",
  200: "(#200) Permissions error",
  368: "(#368) The action attempted has been deemed abusive or is otherwise disallowed",
  551: "(#551) This person isn't available right now.",
  613: "(#613) Calls to this api have exceeded the rate limit.",
};
const DEFAULT_SUBCODES: Record<number, number> = { 10: 2018278, 551: 1545041 };

export interface ErrorSpec {
  code: number;
  message: string;
  subcode?: number;
  type?: string;
  status?: number;
  isTransient?: boolean;
  headers?: Record<string, string>;
}

export class GraphError extends Error {
  constructor(readonly spec: ErrorSpec) {
    super(spec.message);
  }
}

export function graphFail(code: number, message: string, extra: Omit<ErrorSpec, "code" | "message"> = {}): never {
  throw new GraphError({ code, message, ...extra });
}

/** Code 100, "(#100) …": a parameter Graph refuses. */
export function invalid(message: string, subcode?: number): never {
  graphFail(100, `(#100) ${message}`, subcode === undefined ? {} : { subcode });
}

/** Graph's answer for a node or edge that does not exist, or a method it does not take. */
export function unsupported(method: string, id: string): never {
  graphFail(
    100,
    `Unsupported ${method.toLowerCase()} request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
    { subcode: 33, type: "GraphMethodException" },
  );
}

/** Throws a scripted Graph error. */
export function scriptedFail(failure: Extract<ScriptedFailure, { code: number }>): never {
  throw new GraphError({
    code: failure.code,
    message: failure.message ?? DEFAULT_MESSAGES[failure.code] ?? "An unknown error has occurred.",
    subcode: failure.subcode ?? DEFAULT_SUBCODES[failure.code],
    type: failure.type,
    status: failure.status,
    isTransient: failure.isTransient,
    headers: failure.headers,
  } as ErrorSpec);
}
