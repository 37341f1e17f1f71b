/** Building a Config the way the program does: from TOML text through `parseSettings`. */
import { parseSettings, type Config, type Env } from "../../src/config/load.ts";
import { SettingsError, formatProblem } from "../../src/config/problems.ts";

/** Ids and secrets shared by the tests (invented, in the shapes Meta uses). */
export const PAGE_ID = "104857600012345";
export const PAGE_ID_2 = "104857600067890";
export const UNLISTED_PAGE_ID = "104857600099999";
export const PSID = "6301234567890123";
export const PSID_2 = "6301234567890456";
export const APP_SECRET = "test_app_secret_0123";
export const VERIFY_TOKEN = "verify-token-7f3a9c21";
export const PAGE_TOKEN = "EAAGpagetokenSECRET0001";
export const PAGE_TOKEN_2 = "EAAGpagetokenSECRET0002";

export function configFromToml(text: string, options: { dir: string; env?: Env }): Config {
  return parseSettings(text, { dir: options.dir, env: options.env ?? {} });
}

export interface EndpointSpec {
  id: string;
  flow?: string;
  enabled?: boolean;
  verifyToken?: string;
  /** null: no app_secret (unsigned POSTs are accepted). */
  appSecret?: string | null;
  pages?: { id: string; token: string }[];
}

export interface SettingsSpec {
  storageUrl?: string;
  maxBodyBytes?: number;
  logLevel?: "debug" | "info" | "warn" | "error";
  endpoints?: EndpointSpec[];
  /** Appended verbatim. */
  extra?: string;
}

export const DEFAULT_ENDPOINT: EndpointSpec = {
  id: "support",
  appSecret: APP_SECRET,
  verifyToken: VERIFY_TOKEN,
  pages: [
    { id: PAGE_ID, token: PAGE_TOKEN },
    { id: PAGE_ID_2, token: PAGE_TOKEN_2 },
  ],
};

const q = (s: string) => JSON.stringify(s);

/** A valid settings file with one echo flow and the given endpoints. */
export function settingsToml(spec: SettingsSpec = {}): string {
  const lines = [
    "[server]",
    `max_body_bytes = ${spec.maxBodyBytes ?? 1_048_576}`,
    "",
    "[storage]",
    `url = ${q(spec.storageUrl ?? "file:data/messenger-endpoint.db")}`,
    "",
    "[log]",
    `level = ${q(spec.logLevel ?? "debug")}`,
    "",
    "[flows.echo]",
    'kind = "script"',
    'module = "builtin:echo"',
  ];
  for (const e of spec.endpoints ?? [DEFAULT_ENDPOINT]) {
    lines.push("", "[[endpoints]]", `id = ${q(e.id)}`, `flow = ${q(e.flow ?? "echo")}`);
    if (e.enabled !== undefined) lines.push(`enabled = ${e.enabled}`);
    lines.push(`verify_token = ${q(e.verifyToken ?? VERIFY_TOKEN)}`);
    const secret = e.appSecret === undefined ? APP_SECRET : e.appSecret;
    if (secret !== null) lines.push(`app_secret = ${q(secret)}`);
    const pages = e.pages ?? DEFAULT_ENDPOINT.pages!;
    lines.push(`pages = [ ${pages.map((p) => `{ id = ${q(p.id)}, access_token = ${q(p.token)} }`).join(", ")} ]`);
  }
  if (spec.extra) lines.push("", spec.extra);
  return `${lines.join("\n")}\n`;
}

/** The problems (and warnings) a settings text is rejected with; fails the test when it is accepted. */
export function rejectedSettings(text: string, options: { dir: string; env?: Env }): { problems: string[]; warnings: string[] } {
  try {
    configFromToml(text, options);
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    return { problems: error.problems.map(formatProblem), warnings: error.warnings.map(formatProblem) };
  }
  throw new Error("expected the settings to be rejected, but they were accepted");
}
