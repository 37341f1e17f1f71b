/**
 * `init [FILE]`: write the commented settings manual (examples/messenger-endpoint.toml, embedded
 * in the binary as text) with a fresh verify token and admin API key, mode 0600, never over an
 * existing file. What is left for the operator is what only they know: `check` on the fresh file
 * names exactly the Page id, the Page access token and the App secret (test/integration/init.test.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { CONFIG_ENV, DEFAULT_CONFIG_FILE } from "../config/load.ts";
import manual from "../../examples/messenger-endpoint.toml" with { type: "text" };
import type { ParsedArgs } from "./args.ts";
import type { CliIo } from "./main.ts";

/** 32 random bytes as base64url: 43 characters (admin keys need 16, config/schema.ts). */
export function randomSecret(): string {
  return randomBytes(32).toString("base64url");
}

export class InitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InitError";
  }
}

/**
 * The manual with the secrets this command can make filled in, the endpoint on the built-in echo
 * flow (so that nothing but the Facebook values is missing), and the Facebook values as `${VAR}`
 * references that `check` names by key path. Each replacement must match the manual exactly once:
 * a changed example fails here, and in test/unit/cli/init.test.ts, instead of writing a file that
 * asks for the wrong things.
 */
export function initialSettings(verifyToken: string, adminKey: string, today: string, text: string = manual as unknown as string): string {
  const replacements: [string, string][] = [
    [
      "# Copy this file to ./messenger-endpoint.toml (or point --config / $MESSENGER_ENDPOINT_CONFIG at\n" +
        '# it), fill in your values, and run `messenger-endpoint check` until it says "valid".\n',
      `# Written by \`messenger-endpoint init\` on ${today}. The verify token and the admin API key below are\n` +
        "# fresh random values. Fill in what only you know: your Page's id and access token and your App\n" +
        "# secret (replace the ${FB_...} references, or export those variables), point server.public_url at\n" +
        '# your HTTPS address, and run `messenger-endpoint check` until it says "valid".\n',
    ],
    ['api_keys = ["${ADMIN_API_KEY}"]', `api_keys = ["${adminKey}"]`],
    ['verify_token = "${FB_VERIFY_TOKEN}"', `verify_token = "${verifyToken}"`],
    ['{ id = "104857600012345", name = "Example Shop",', '{ id = "${FB_PAGE_ID}", name = "Example Shop",'],
    [
      'flow = "support"                         # a flow defined above',
      'flow = "demo"                            # a flow defined above; "demo" echoes until your agent is ready',
    ],
    ['"Bearer ${AGENT_TOKEN}"', '"Bearer ${AGENT_TOKEN:-}"'],
  ];
  let out = text;
  for (const [from, to] of replacements) {
    const count = out.split(from).length - 1;
    if (count !== 1) throw new Error(`init: the embedded settings manual has ${count} copies of ${JSON.stringify(from.slice(0, 60))}, expected one`);
    out = out.replace(from, () => to);
  }
  return out;
}

/** The file `init` writes: FILE, else --config, else $MESSENGER_ENDPOINT_CONFIG, else ./messenger-endpoint.toml (as serve looks). */
export function initTarget(args: ParsedArgs, io: CliIo): string {
  return resolve(io.cwd, args.positional[0] ?? args.config ?? io.env[CONFIG_ENV] ?? DEFAULT_CONFIG_FILE);
}

export function init(args: ParsedArgs, io: CliIo): number {
  const file = initTarget(args, io);
  const text = initialSettings(randomSecret(), randomSecret(), new Date().toISOString().slice(0, 10));
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // "wx": created here or not at all, even if another process makes the file meanwhile.
    writeFileSync(file, text, { mode: 0o600, flag: "wx" });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      throw new InitError(
        `${file} already exists and was left as it is: edit it, check it with \`messenger-endpoint check --config ${file}\`, or name another file`,
      );
    }
    throw new InitError(`cannot write ${file}: ${(error as Error).message} (run as a user who may write there, or name another file)`);
  }
  const config = args.positional[0] || args.config || io.env[CONFIG_ENV] ? ` --config ${file}` : "";
  io.out(
    [
      `wrote ${file} (mode 0600): the settings manual, with a random verify_token and admin API key filled in`,
      "",
      "Next steps:",
      `  1. Fill in endpoints[0]: your Page's id (FB_PAGE_ID), its access token (FB_PAGE_TOKEN) and the App secret (FB_APP_SECRET),`,
      "     either in the file or as environment variables; set server.public_url to your HTTPS address.",
      `  2. messenger-endpoint check${config}   until it says "valid"`,
      `  3. messenger-endpoint serve${config}   behind a TLS reverse proxy (docs/operations.md, "From download to a service")`,
      "  4. In your Facebook App > Messenger > Webhooks: the callback URL the server prints, and as Verify Token",
      `     the verify_token of ${file}.`,
    ].join("\n"),
  );
  return 0;
}
