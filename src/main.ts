// The driver registration must run before anything imports @libsql/client.
import "./native/libsql-addon.ts";
import { runCli } from "./cli/main.ts";

process.exit(await runCli(process.argv.slice(2)));
