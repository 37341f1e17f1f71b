/**
 * docs/webhook.md "Trying it by hand": the shell commands of its first code block, run as they are
 * written (bash, openssl, curl) against a test server with its variables set to it. They must
 * store the event and get it answered; a second run of the same file is a redelivery; a wrong
 * secret gets 401.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { APP_SECRET, PAGE_ID } from "../helpers/config.ts";
import { messageTexts, rows, startConversation, type Conversation } from "../helpers/conversation.ts";

const doc = readFileSync(join(import.meta.dir, "..", "..", "docs", "webhook.md"), "utf8");
const section = doc.slice(doc.indexOf("## Trying it by hand"));
const block = section.slice(section.indexOf("```sh\n") + 6, section.indexOf("\n```", section.indexOf("```sh\n") + 6));
const PSID = "6301234567890999";

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

/** The block with its four variables set to this server (the lines that set them replaced). */
function script(c: Conversation, secret: string): string {
  const values: Record<string, string> = { URL: `${c.url}/webhooks/support`, APP_SECRET: secret, PAGE_ID, PSID };
  return block
    .split("\n")
    .map((line) => {
      const name = /^([A-Z_]+)=/.exec(line)?.[1];
      return name && name in values ? `${name}=${JSON.stringify(values[name])}` : line;
    })
    .join("\n");
}

async function run(c: Conversation, secret: string, reuse = false): Promise<string> {
  // The second run sends the same file again: the lines that write it are left out.
  const text = reuse ? script(c, secret).replace(/NOW=[\s\S]*?^JSON$/m, "") : script(c, secret);
  const proc = Bun.spawn(["bash", "-euo", "pipefail", "-c", text], { cwd: c.dir.path, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`the documented commands failed (${code}): ${err}`);
  return out;
}

test("the documented commands find a block that sets the four variables, signs with openssl and posts with curl", () => {
  for (const name of ["URL", "APP_SECRET", "PAGE_ID", "PSID"]) expect(block).toMatch(new RegExp(`^${name}=`, "m"));
  expect(block).toContain("openssl dgst -sha256 -hmac");
  expect(block).toContain("--data-binary @event.json");
});

test("as written, they store a message that is answered; sent again it is a redelivery; with another secret 401", async () => {
  const c = await startConversation();
  open.push(c);
  expect(await run(c, APP_SECRET)).toBe("EVENT_RECEIVED");
  await c.graph.waitForSends(1, { recipientId: PSID });
  expect(messageTexts(c.sends(PSID))).toEqual(["You said: hello"]);
  expect(await run(c, APP_SECRET, true)).toBe("EVENT_RECEIVED");
  await c.app.writes.drain();
  expect((await rows(c, "SELECT count(*) AS n FROM inbox WHERE user_id = ?", [PSID]))[0]!.n).toBe(1);
  expect(await run(c, "not-the-app-secret", true)).toContain("signature");
});
