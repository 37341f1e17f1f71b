/**
 * Which `Host` the simulator answers. Its page and API have no key: on loopback they are safe only
 * as long as no other site's page can reach them. A page served from `evil.example` can, by DNS
 * rebinding: it points `evil.example` at 127.0.0.1, and the browser then sends its requests (same
 * origin, as far as the browser knows) to the simulator, with `Host: evil.example`. So only the
 * names this server is reached by are answered: loopback, the listen address, the host of
 * `server.public_url`, and `[simulator] allowed_hosts`. Names compare case-insensitively, without
 * the port and a trailing dot.
 */
import type { Settings } from "../config/schema.ts";

/** The names a server on this machine is always reached by. */
export const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"] as const;

/**
 * A `Host` header, a listen address or a setting as a comparable name: `LocalHost:8080` →
 * `localhost`, `::1` → `[::1]`, `bücher.example` → `xn--bcher-kva.example`. Null when it is not a
 * host name (a path, a scheme, userinfo, spaces).
 */
export function hostName(value: string): string | null {
  const trimmed = value.trim();
  if (!trimmed || /[\s/?#@\\]/.test(trimmed)) return null;
  // A bare IPv6 address (a listen address such as "::1") has more than one colon and no brackets.
  const host = !trimmed.startsWith("[") && trimmed.indexOf(":") !== trimmed.lastIndexOf(":") ? `[${trimmed}]` : trimmed;
  try {
    return new URL(`http://${host}/`).hostname.replace(/\.$/, "") || null;
  } catch {
    return null;
  }
}

export class AllowedHosts {
  readonly #names = new Set<string>();

  constructor(settings: Pick<Settings, "server" | "simulator">) {
    for (const name of LOOPBACK_HOSTS) this.add(name);
    this.add(settings.server.host);
    if (settings.server.public_url) this.add(new URL(settings.server.public_url).host);
    for (const name of settings.simulator.allowed_hosts) this.add(name);
  }

  /** Another name the server is reached by (the address it listens on, known when it listens). */
  add(value: string): void {
    const name = hostName(value);
    if (name) this.#names.add(name);
  }

  /** Whether a request was addressed to one of these names; if not, the name it was addressed to (for the refusal). */
  allows(request: Request): { ok: true } | { ok: false; name: string } {
    const given = request.headers.get("host") ?? new URL(request.url).host;
    const name = hostName(given);
    return name !== null && this.#names.has(name) ? { ok: true } : { ok: false, name: name ?? given.slice(0, 100) };
  }
}
