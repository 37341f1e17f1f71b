/** Paths in the settings are relative to the settings folder: made absolute once, when they are loaded. */
import { isAbsolute, resolve } from "node:path";
import type { Settings } from "./schema.ts";

/** The flows', their tools' parameters files, transformers' and NLU scripts' modules (not the built-in flows) and a `file:` storage URL, made absolute. */
export function makePathsAbsolute(settings: Settings, dir: string): Settings {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const flows = Object.fromEntries(
    Object.entries(settings.flows).map(([name, flow]) => [
      name,
      {
        ...(flow.module && !flow.module.startsWith("builtin:") ? { ...flow, module: abs(flow.module) } : flow),
        ...(flow.tools ? { tools: flow.tools.map((t) => (t.parameters_file ? { ...t, parameters_file: abs(t.parameters_file) } : t)) } : {}),
      },
    ]),
  );
  const endpoints = settings.endpoints.map((e) => ({
    ...e,
    transformers: e.transformers.module ? { ...e.transformers, module: abs(e.transformers.module) } : e.transformers,
    nlu: e.nlu.module ? { ...e.nlu, module: abs(e.nlu.module) } : e.nlu,
  }));
  return { ...settings, storage: { ...settings.storage, url: absoluteStorageUrl(settings.storage.url, dir) }, flows, endpoints };
}

/** `file:data/x.db` is relative to the settings folder; other libSQL URLs are left alone. */
export function absoluteStorageUrl(url: string, dir: string): string {
  if (!url.startsWith("file:")) return url;
  let path = url.slice("file:".length);
  if (path.startsWith("//")) path = path.replace(/^\/\/[^/]*/, ""); // file:///abs or file://host/abs
  if (path === ":memory:") return url;
  return `file:${isAbsolute(path) ? path : resolve(dir, path)}`;
}
