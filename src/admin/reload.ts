/**
 * The settings reload:
 *
 *   POST /api/reload    reads the settings file again and applies what can change while the server
 *                       runs (config/live.ts); the same as `SIGHUP` (cli/serve.ts)
 *
 * 200 `{ applied, needs_restart, unchanged }` (key paths); 400 invalid_settings with every problem
 * and its key path when the file is not valid, and then nothing was changed.
 */
import { Elysia } from "elysia";
import type { ReloadOutcome } from "../config/live.ts";
import { formatProblem } from "../config/problems.ts";
import { HttpError } from "../http/errors.ts";
import { jsonResponse } from "../http/responses.ts";
import type { Logger } from "../log/logger.ts";
import type { AdminGuard } from "./guard.ts";
import { answer, errorAnswer } from "./openapi.ts";

export interface ReloadRouteDeps {
  guard: AdminGuard;
  /** Reads the file and applies it, and logs the outcome (app.ts). */
  reload: (log: Logger) => Promise<ReloadOutcome>;
}

const paths = { type: "array", items: { type: "string" } };

export function reloadRoutes({ guard, reload }: ReloadRouteDeps) {
  return new Elysia({ name: "admin-reload" }).use(guard.plugin).post(
    "/api/reload",
    async ({ requestId, log }) => {
      const outcome = await reload(log);
      if (!outcome.ok) {
        const message = `the settings file has ${outcome.problems.length} problem${outcome.problems.length === 1 ? "" : "s"}; nothing was changed: fix them (messenger-endpoint check shows them) and reload again: ${outcome.problems.map(formatProblem).join("; ")}`;
        throw new HttpError("invalid_settings", message, undefined, { problems: outcome.problems });
      }
      const { applied, needs_restart, unchanged } = outcome;
      return jsonResponse(200, { applied, needs_restart, unchanged }, requestId);
    },
    {
      ...guard.noBody,
      detail: {
        summary: "Reload the settings file (as SIGHUP does)",
        responses: {
          "200": answer("what changed: applied now, and what needs a restart (key paths)", {
            type: "object",
            properties: { applied: paths, needs_restart: paths, unchanged: { type: "boolean" } },
            required: ["applied", "needs_restart", "unchanged"],
          }),
          "400": errorAnswer("invalid_settings: the file has problems (`problems`: `{ path, message }` each); nothing was changed"),
        },
      },
    },
  );
}
