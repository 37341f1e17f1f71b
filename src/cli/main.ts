/**
 * The command line. Each command returns its exit code: 0 ok, 1 invalid settings or usage,
 * 2 runtime failure (with a one-line reason on stderr).
 */
import { resolve } from "node:path";
import { demoConfig } from "../config/demo.ts";
import { loadSettingsFile, locateSettingsFile, CONFIG_ENV, DEFAULT_CONFIG_FILE, type Config, type Env } from "../config/load.ts";
import { SettingsError, formatProblem } from "../config/problems.ts";
import { securityWarnings } from "../config/validate.ts";
import { databaseFile, DatabaseError } from "../db/client.ts";
import { applyMigrations } from "../db/migrate.ts";
import { backupDatabase, restoreDatabase, BackupError } from "../db/backup.ts";
import { LockedError } from "../db/lock.ts";
import { displayUrl, scrub } from "../log/scrub.ts";
import { VERSION } from "../version.ts";
import { parseArgs, UsageError, type ParsedArgs } from "./args.ts";
import { USAGE } from "./usage.ts";
import { openStorage, serve } from "./serve.ts";
import { init, InitError } from "./init.ts";
import { healthcheck } from "./healthcheck.ts";

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: Env;
  cwd: string;
}

export const processIo: CliIo = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
  cwd: process.cwd(),
};

export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`messenger-endpoint: ${error.message}\n\n${USAGE.main}`);
    return 1;
  }
  if (args.command === "help") {
    io.out(USAGE[args.positional[0] ?? "main"] ?? USAGE.main!);
    return 0;
  }
  if (args.help) {
    io.out((args.explicit ? USAGE[args.command] : undefined) ?? USAGE.main!);
    return 0;
  }
  try {
    switch (args.command) {
      case "version":
        io.out(`messenger-endpoint ${VERSION}`);
        return 0;
      case "init":
        return init(args, io);
      case "check":
        return check(args, io);
      case "healthcheck":
        return await healthcheck(loadConfig(args, io, { allowDemo: true }), { host: args.host, port: args.port }, io);
      case "serve":
        return await serve(loadConfig(args, io, { allowDemo: true }), { host: args.host, port: args.port, adopt: args.adopt ?? false }, io);
      case "migrate":
        return await migrate(args, io);
      case "backup":
        return await backup(args, io);
      case "restore":
        return await restore(args, io);
    }
  } catch (error) {
    return reportFailure(error, io);
  }
}

/**
 * The secrets of the settings a run loaded, by its io: a failure is printed by reportFailure, far
 * from the command that loaded them, and must not quote them (a driver's error may).
 */
const loadedSecrets = new WeakMap<CliIo, readonly string[]>();

function loadConfig(args: ParsedArgs, io: CliIo, { allowDemo }: { allowDemo: boolean }): Config {
  const file = locateSettingsFile(args.config, io.env, io.cwd);
  const config = file ? loadSettingsFile(file, io.env) : allowDemo ? demoConfig(io.cwd, io.env) : null;
  if (config) {
    loadedSecrets.set(io, config.secrets);
    return config;
  }
  throw new SettingsError(null, [
    {
      path: "",
      message: `no settings file: pass --config FILE, set $${CONFIG_ENV}, or write ./${DEFAULT_CONFIG_FILE} with "messenger-endpoint init"`,
    },
  ]);
}

function check(args: ParsedArgs, io: CliIo): number {
  let config: Config;
  try {
    config = loadConfig(args, io, { allowDemo: false });
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    for (const w of error.warnings) io.out(`warning: ${formatProblem(w)}`);
    for (const p of error.problems) io.out(`error: ${formatProblem(p)}`);
    io.out(`${error.file ?? "settings"}: invalid (${error.problems.length} problem${error.problems.length === 1 ? "" : "s"})`);
    return 1;
  }
  for (const w of config.warnings) io.out(`warning: ${formatProblem(w)}`);
  for (const w of securityWarnings(config)) io.out(`warning: ${w}`);
  const pages = config.endpoints.reduce((n, e) => n + e.pages.length, 0);
  io.out(
    `${config.file}: valid (${config.endpoints.length} endpoint${config.endpoints.length === 1 ? "" : "s"}, ` +
      `${Object.keys(config.flows).length} flow${Object.keys(config.flows).length === 1 ? "" : "s"}, ${pages} Page${pages === 1 ? "" : "s"})`,
  );
  return 0;
}

async function migrate(args: ParsedArgs, io: CliIo): Promise<number> {
  const config = loadConfig(args, io, { allowDemo: true });
  const database = await openStorage(config, { adopt: args.adopt ?? false });
  try {
    const result = await applyMigrations(database, { backupBefore: config.storage.backup_before_migrate });
    if (result.backup) io.out(`backup written to ${result.backup} before migrating`);
    io.out(`${describeDatabase(config)}: applied ${result.applied} migration${result.applied === 1 ? "" : "s"} (${result.total} in total)`);
    return 0;
  } finally {
    database.close();
  }
}

async function backup(args: ParsedArgs, io: CliIo): Promise<number> {
  const out = args.positional[0];
  if (!out) return usageFailure("backup needs the file to write: messenger-endpoint backup OUT_FILE", io);
  const config = loadConfig(args, io, { allowDemo: true });
  const file = requireFileDatabase(config);
  const result = await backupDatabase(file, resolve(io.cwd, out));
  io.out(`backup written to ${result.file}: ${formatBytes(result.bytes)}, ${result.tables} tables, ` + `${result.migrations} migrations, integrity check ok`);
  return 0;
}

async function restore(args: ParsedArgs, io: CliIo): Promise<number> {
  const input = args.positional[0];
  if (!input) return usageFailure("restore needs the backup file: messenger-endpoint restore BACKUP_FILE", io);
  const config = loadConfig(args, io, { allowDemo: true });
  const file = requireFileDatabase(config);
  const result = await restoreDatabase(file, resolve(io.cwd, input));
  io.out(
    `restored ${input} into ${file} (integrity check ok, ${result.restored.migrations} migrations)` +
      (result.safetyCopy ? `; the previous database is kept at ${result.safetyCopy}` : "; there was no previous database"),
  );
  return 0;
}

function requireFileDatabase(config: Config): string {
  const file = databaseFile(config.storage.url);
  if (!file) {
    throw new UsageError(`storage.url ${displayUrl(config.storage.url)} is not a local file: back up a libSQL server with its own tools (sqld / Turso)`);
  }
  return file;
}

function describeDatabase(config: Config): string {
  return databaseFile(config.storage.url) ?? displayUrl(config.storage.url);
}

function usageFailure(message: string, io: CliIo): number {
  io.err(`messenger-endpoint: ${message}`);
  return 1;
}

function reportFailure(error: unknown, runIo: CliIo): number {
  // Whatever failed, its message may quote a driver's or a library's text: nothing printed here
  // carries a secret of the settings or the credentials of a URL (log/scrub.ts).
  const io: CliIo = { ...runIo, err: (text) => runIo.err(scrub(text, loadedSecrets.get(runIo) ?? [])) };
  if (error instanceof SettingsError) {
    io.err(error.message);
    return 1;
  }
  if (error instanceof UsageError) return usageFailure(error.message, io);
  if (error instanceof DatabaseError || error instanceof BackupError || error instanceof LockedError || error instanceof InitError) {
    io.err(`messenger-endpoint: ${error.message}`);
    return 2;
  }
  io.err(`messenger-endpoint: ${(error as Error)?.message ?? String(error)}`);
  return 2;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
