import { VERSION } from "../version.ts";

const COMMON = `Settings file: --config FILE, else $MESSENGER_ENDPOINT_CONFIG, else ./messenger-endpoint.toml.`;

export const USAGE: Record<string, string> = {
  main: `messenger-endpoint ${VERSION}: connects AI agents to Facebook Messenger.

Usage: messenger-endpoint [command] [options]

Commands:
  serve                 run the server (the default command)
  init [FILE]           write a commented settings file with fresh secrets (never overwrites)
  check                 validate the settings file and print every problem
  healthcheck           ask the running server's /readyz: exit 0 ready, 1 not ready, 2 no answer
  migrate               apply pending database migrations and exit
  backup OUT_FILE       write a checked copy of the live database (never overwrites)
  restore BACKUP_FILE   put a backup in place of the database (server stopped)
  version               print the version

Options:
  --config FILE         the settings file
  --adopt               serve, migrate: use another program's SQLite file, adding our tables
  --help                usage of a command, e.g. messenger-endpoint backup --help
  --version             print the version

${COMMON}
Without any settings file, serve starts the built-in demo; messenger-endpoint init writes one.
Exit codes: 0 ok, 1 invalid settings or usage, 2 runtime failure.`,
  serve: `Usage: messenger-endpoint serve [--config FILE] [--host HOST] [--port PORT] [--adopt]

Runs the server: Facebook webhooks at /webhooks/{endpoint_id}, /healthz, /readyz, /metrics.
Applies pending migrations at start. SIGTERM or SIGINT stops it cleanly (a second one at once).
--host and --port override server.host and server.port (port 0 picks a free port).
A database written by a newer version, or a SQLite file of another program, is refused (exit 2);
--adopt accepts the latter and adds messenger-endpoint's tables beside its own.
${COMMON}
Without any settings file it starts the built-in demo (echo flow, endpoint "demo", ./data/).`,
  init: `Usage: messenger-endpoint init [FILE]

Writes the settings manual (every key, commented) to FILE, with a fresh random verify_token and
admin API key, readable by you only (mode 0600). What only you know is left to fill in: your Page's
id and access token and your App secret; messenger-endpoint check names each by its key path.
Never overwrites: an existing file is left as it is (exit 2).
FILE defaults to where serve looks: --config FILE, else $MESSENGER_ENDPOINT_CONFIG, else
./messenger-endpoint.toml.`,
  healthcheck: `Usage: messenger-endpoint healthcheck [--config FILE] [--host HOST] [--port PORT]

Asks the running server's /readyz at server.host and server.port of the settings (0.0.0.0 and ::
are asked on loopback), within 3 s. For systemd, Docker's HEALTHCHECK and Kubernetes exec probes.
Exit 0 ready; 1 not ready (prints the checks that failed, e.g. the database not writable);
2 no answer in time, or not messenger-endpoint's answer.
${COMMON}`,
  check: `Usage: messenger-endpoint check [--config FILE]

Validates the settings file. Prints every problem with its key path, and unknown keys as
warnings. Exit 0 when valid, 1 otherwise.
${COMMON}`,
  migrate: `Usage: messenger-endpoint migrate [--config FILE] [--adopt]

Applies pending database migrations to storage.url and exits. (serve does this at start too.)
A database written by a newer version, or a SQLite file of another program, is refused (exit 2);
--adopt accepts the latter and adds messenger-endpoint's tables beside its own.
${COMMON}`,
  backup: `Usage: messenger-endpoint backup OUT_FILE [--config FILE]

Writes a consistent copy of the database while the server keeps running, then checks the copy's
integrity. Refuses to overwrite an existing file. Works for file: databases.
${COMMON}`,
  restore: `Usage: messenger-endpoint restore BACKUP_FILE [--config FILE]

Checks the backup, keeps the current database aside as <db>.before-restore-<time>, and puts the
backup in its place. The server must be stopped. Newer migrations are applied at the next start;
a backup written by a newer version is refused (exit 2).
${COMMON}`,
  version: `Usage: messenger-endpoint version\n\nPrints the version.`,
  help: `Usage: messenger-endpoint help [command]`,
};
