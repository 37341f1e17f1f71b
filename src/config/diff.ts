/**
 * What changed between two settings, by key path, and which changes a running server takes
 * (config/live.ts applies them) and which need a restart. Endpoints and Pages are matched by id,
 * so their paths read `endpoints[id="shop"].pages[id="123"].access_token`; other arrays are
 * compared whole. Paths only: values (tokens, keys) never appear.
 */
import { Value } from "@sinclair/typebox/value";
import { EndpointSettings, Settings } from "./schema.ts";
import { isPlainObject } from "./tree.ts";

export interface SettingsDiff {
  /** Changed key paths that take effect without a restart. */
  live: string[];
  /** Changed key paths that take effect only at the next start. */
  restart: string[];
}

/** Top-level keys taken live (the rest of server, storage, graph, metrics, simulator, cluster, log.format wait for a restart). */
const LIVE_TOP = ["log.level", "admin.api_keys", "flows"];

/** An endpoint's keys taken live; its transformers, nlu, translation and messenger_profile are set up at start. */
const LIVE_ENDPOINT_KEYS = new Set([
  "id",
  "flow",
  "enabled",
  "locale",
  "verify_token",
  "app_id",
  "app_secret",
  "pages",
  "profiles",
  "messenger",
  "session",
  "data_protection",
  "handover",
]);
const RESTART_ENDPOINT_KEYS = ["transformers", "nlu", "translation", "messenger_profile"] as const;

export function diffSettings(before: Settings, after: Settings): SettingsDiff {
  const live: string[] = [];
  const restart: string[] = [];
  const classify = (path: string) => (LIVE_TOP.some((p) => path === p || path.startsWith(`${p}.`) || path.startsWith(`${p}[`)) ? live : restart).push(path);
  for (const key of Object.keys(Settings.properties) as (keyof Settings)[]) {
    if (key === "endpoints") continue;
    for (const path of changedPaths(before[key], after[key], key)) classify(path);
  }
  const old = new Map(before.endpoints.map((e) => [e.id, e]));
  const now = new Map(after.endpoints.map((e) => [e.id, e]));
  for (const [id] of old) if (!now.has(id)) live.push(endpointPath(id));
  for (const [id, endpoint] of now) {
    const base = endpointPath(id);
    const previous = old.get(id);
    if (!previous) {
      live.push(base);
      // What an added endpoint has set up at start is there only after a restart.
      for (const key of RESTART_ENDPOINT_KEYS) {
        const empty = key === "messenger_profile" ? undefined : Value.Default(EndpointSettings.properties[key], {});
        if (!equal(endpoint[key], empty)) restart.push(`${base}.${key}`);
      }
      continue;
    }
    for (const key of Object.keys({ ...previous, ...endpoint }) as (keyof EndpointSettings)[]) {
      for (const path of changedPaths(previous[key], endpoint[key], `${base}.${key}`)) (LIVE_ENDPOINT_KEYS.has(key) ? live : restart).push(path);
    }
  }
  return { live, restart };
}

const endpointPath = (id: string) => `endpoints[id=${JSON.stringify(id)}]`;

/** The leaf paths where two values differ: objects key by key, arrays of things with an `id` by id, other arrays whole. */
export function changedPaths(a: unknown, b: unknown, path: string): string[] {
  if (equal(a, b)) return [];
  if (isPlainObject(a) && isPlainObject(b)) {
    return Object.keys({ ...a, ...b }).flatMap((k) => changedPaths(a[k], b[k], `${path}.${k}`));
  }
  if (hasIds(a) && hasIds(b)) {
    const before = new Map(a.map((x) => [x.id, x]));
    const after = new Map(b.map((x) => [x.id, x]));
    const ids = [...new Set([...before.keys(), ...after.keys()])];
    const changed = ids.flatMap((id) => changedPaths(before.get(id), after.get(id), `${path}[id=${JSON.stringify(id)}]`));
    // The same items in another order: the order itself changed.
    return changed.length > 0 ? changed : [path];
  }
  return [path];
}

function hasIds(value: unknown): value is { id: string }[] {
  return Array.isArray(value) && value.every((x) => isPlainObject(x) && typeof x.id === "string");
}

function equal(a: unknown, b: unknown): boolean {
  return Value.Equal(a, b);
}
