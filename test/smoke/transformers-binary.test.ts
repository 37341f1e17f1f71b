/**
 * Transformers in the compiled binary: the worker is an entry point embedded in the executable,
 * the operator's module is loaded from disk next to the settings, and a change to it is picked
 * up without a restart.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { signBody } from "../../src/webhook/signature.ts";
import { installBinary, start, type Running } from "./binary-helpers.ts";

const SECRET = "smoke-app-secret-0123456789";
const PAGE = "104857600012345";
const TOKEN = "smoke-page-token-abcdef";
const USER = "6301234567890123";

let install: Awaited<ReturnType<typeof installBinary>>;
let graph: FakeGraph;
let server: Running | null = null;

beforeAll(async () => {
  install = await installBinary();
  graph = await FakeGraph.start({ pages: [{ id: PAGE, token: TOKEN, appSecret: SECRET }] });
});
afterAll(async () => {
  if (server && server.proc.exitCode === null) server.proc.kill("SIGKILL");
  await graph.stop();
  install.cleanup();
});

/** Saved the way editors do: a new file renamed over the old one. */
function saveModule(code: string) {
  const file = join(install.dir, "transformers", "t.ts");
  writeFileSync(`${file}.tmp`, code);
  renameSync(`${file}.tmp`, file);
}

async function say(base: string, text: string, n: number): Promise<string> {
  const body = JSON.stringify({
    object: "page",
    entry: [
      {
        id: PAGE,
        time: Date.now(),
        messaging: [{ sender: { id: USER }, recipient: { id: PAGE }, timestamp: Date.now(), message: { mid: `m_${n}_${Date.now()}`, text } }],
      },
    ],
  });
  const response = await fetch(`${base}/webhooks/smoke`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signBody(SECRET, body) },
    body,
  });
  expect(response.status).toBe(200);
  const sends = await graph.waitForSends(n, { recipientId: USER }, 15_000);
  return String(sends[n - 1]!.message.text);
}

test("the binary runs input and output transformers in its worker and reloads a changed module, and on SIGHUP", async () => {
  mkdirSync(join(install.dir, "transformers"));
  saveModule(`export function handleInput({ event }) { return { text: "in:" + event.message.text }; }
export function handleOutput({ processedOutput }) { return { text: String(processedOutput.text).toUpperCase() }; }`);
  writeFileSync(
    join(install.dir, "settings.toml"),
    `[server]
port = 0
[storage]
url = "file:data/t.db"
[graph]
url = "${graph.url}"
[flows.echo]
kind = "script"
module = "builtin:echo"
[[endpoints]]
id = "smoke"
flow = "echo"
verify_token = "smoke-verify-token"
app_secret = "${SECRET}"
pages = [ { id = "${PAGE}", access_token = "${TOKEN}" } ]
[endpoints.messenger]
typing_indicators = false
message_delay_ms = 0
[endpoints.transformers]
module = "transformers/t.ts"
input = true
output = true
`,
  );
  server = start(install.bin, ["serve", "--config", "settings.toml"], { cwd: install.dir });
  const base = String((await server.waitFor((l) => l.msg === "listening", 30_000)).url);
  expect(await say(base, "hello", 1)).toBe("YOU SAID: IN:HELLO");
  saveModule(`export function handleInput({ event }) { return { text: "v2:" + event.message.text }; }
export function handleOutput({ processedOutput }) { return { text: processedOutput.text + "!" }; }`);
  await server.waitFor((l) => l.msg === "transformer module reloaded", 15_000);
  expect(await say(base, "again", 2)).toBe("You said: v2:again!");
  // SIGHUP reloads as well.
  const reloads = () => server!.lines.filter((l) => l.msg === "transformer module reloaded").length;
  const before = reloads();
  server.proc.kill("SIGHUP");
  await server.waitFor((l) => l.msg === "SIGHUP: reloading the settings and the transformer modules", 15_000);
  const deadline = Date.now() + 15_000;
  while (reloads() === before && Date.now() < deadline) await Bun.sleep(20);
  expect(reloads()).toBe(before + 1);
  expect(await say(base, "third", 3)).toBe("You said: v2:third!");
  server.proc.kill("SIGTERM");
  expect(await server.exited).toBe(0);
});
