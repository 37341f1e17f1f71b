/**
 * `healthcheck`: ask the running server's /readyz (src/ops/routes.ts) at the address of the
 * settings, for systemd, Docker's HEALTHCHECK and Kubernetes exec probes. Exit 0 ready, 1 not
 * ready (with the checks that failed), 2 no answer, or not messenger-endpoint's.
 */
import { Type } from "@sinclair/typebox";
import type { Config } from "../config/load.ts";
import { checkJson } from "../core/checks.ts";
import type { CliIo } from "./main.ts";

/** How long the server has to answer: probes run often, and a hung server is not healthy. */
export const HEALTHCHECK_TIMEOUT_MS = 3000;

/** The URL of /readyz for a server listening on host:port; a wildcard address is asked on loopback. */
export function readyzUrl(host: string, port: number): string {
  const ask = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" || host === "[::]" ? "::1" : host;
  return `http://${ask.includes(":") && !ask.startsWith("[") ? `[${ask}]` : ask}:${port}/readyz`;
}

/** What /readyz answers (src/ops/routes.ts): the status, and each check's "ok" or its problem. */
export const ReadyzAnswer = Type.Object({
  status: Type.Union([Type.Literal("ready"), Type.Literal("not_ready")]),
  checks: Type.Record(Type.String(), Type.String()),
});

export async function healthcheck(config: Config, overrides: { host?: string | undefined; port?: number | undefined }, io: CliIo): Promise<number> {
  const url = readyzUrl(overrides.host ?? config.server.host, overrides.port ?? config.server.port);
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(HEALTHCHECK_TIMEOUT_MS), redirect: "manual" });
  } catch (error) {
    const reason = (error as Error).name === "TimeoutError" ? `no answer within ${HEALTHCHECK_TIMEOUT_MS / 1000} s` : (error as Error).message;
    io.err(`messenger-endpoint: unreachable: ${url}: ${reason} (is the server running, with these settings' server.host and server.port?)`);
    return 2;
  }
  const answer = checkJson(ReadyzAnswer, await response.text().catch(() => ""));
  if (answer.ok && response.status === 200 && answer.value.status === "ready") {
    io.out(`ready: ${url}`);
    return 0;
  }
  if (answer.ok && response.status === 503 && answer.value.status === "not_ready") {
    io.out(`not ready: ${url}`);
    for (const [name, problem] of Object.entries(answer.value.checks)) if (problem !== "ok") io.out(`  ${name}: ${problem}`);
    return 1;
  }
  io.err(
    `messenger-endpoint: ${url} answered ${response.status} without messenger-endpoint's readiness report: another program may hold that port (check server.host and server.port)`,
  );
  return 2;
}
