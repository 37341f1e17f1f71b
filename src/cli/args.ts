/** Command-line parsing: `messenger-endpoint [command] [arguments] [--flags]`. */

export const COMMANDS = ["serve", "init", "check", "healthcheck", "migrate", "backup", "restore", "version", "help"] as const;
export type Command = (typeof COMMANDS)[number];

export interface ParsedArgs {
  command: Command;
  /** False when no command was named and `serve` is the default. */
  explicit: boolean;
  positional: string[];
  config?: string;
  port?: number;
  host?: string;
  /** `--adopt`: serve or migrate on another program's SQLite file, adding our tables to it. */
  adopt?: true;
  help: boolean;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const VALUE_FLAGS = new Set(["--config", "--port", "--host"]);

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const positional: string[] = [];
  const values: Record<string, string> = {};
  let help = false;
  let version = false;
  let adopt = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") help = true;
    else if (arg === "--version" || arg === "-v") version = true;
    else if (arg === "--adopt") adopt = true;
    else if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq === -1 ? arg : arg.slice(0, eq);
      if (!VALUE_FLAGS.has(name)) throw new UsageError(`unknown option ${name}`);
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined || value === "") throw new UsageError(`${name} needs a value`);
      values[name.slice(2)] = value;
    } else if (arg.startsWith("-") && arg !== "-") throw new UsageError(`unknown option ${arg}`);
    else positional.push(arg);
  }
  let command: Command = "serve";
  let explicit = false;
  if (version) command = "version";
  else if (positional.length > 0) {
    const name = positional.shift()!;
    if (!(COMMANDS as readonly string[]).includes(name)) throw new UsageError(`unknown command "${name}"`);
    command = name as Command;
    explicit = true;
  }
  const takes = command === "backup" || command === "restore" || command === "help" || command === "init" ? 1 : 0;
  if (!version && positional.length > takes)
    throw new UsageError(`unexpected argument "${positional[takes]}" for ${command}${takes === 0 ? " (settings go with --config FILE)" : ""}`);
  if (adopt && !version && command !== "serve" && command !== "migrate" && command !== "help") {
    throw new UsageError(`--adopt is for serve and migrate, not ${command}`);
  }
  const parsed: ParsedArgs = { command, explicit, positional, help };
  if (adopt) parsed.adopt = true;
  if (values.config !== undefined) parsed.config = values.config;
  if (values.host !== undefined) parsed.host = values.host;
  if (values.port !== undefined) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a whole number from 0 to 65535`);
    parsed.port = port;
  }
  return parsed;
}
