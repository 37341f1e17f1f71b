// The engine's settings first: serve may restart itself with them (cli/engine.ts).
import "./cli/engine-restart.ts";
// The driver registration must run before anything imports @libsql/client.
import "./native/libsql-addon.ts";
import { runCli } from "./cli/main.ts";

process.exit(await runCli(process.argv.slice(2)));
