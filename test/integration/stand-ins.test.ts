/**
 * The simulator's stand-ins for a translation provider and an NLU service (src/simulator/stand-ins.ts),
 * as the demo uses them (src/config/demo.ts): answered in process at http://stand-in.simulator, only
 * while the simulator is on.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { demoConfig } from "../../src/config/demo.ts";
import { standInFetch } from "../../src/simulator/stand-ins.ts";
import { PSID } from "../helpers/config.ts";
import { messageTexts, startConversation, userText, type Conversation } from "../helpers/conversation.ts";

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

const REPORT = {
  files: {
    "flows/report.ts":
      "export default async (input) => ({ outputs: [{ text: `**${JSON.stringify({ text: input.text, language: input.language, intent: input.nlu?.intent ?? null })}**` }] });",
  },
  flow: 'kind = "script"\nmodule = "flows/report.ts"',
};
const STAND_INS = `[endpoints.translation]
provider = "libretranslate"
url = "http://stand-in.simulator/translation/libretranslate"
flow_language = "en"
[endpoints.nlu]
kind = "http"
url = "http://stand-in.simulator/nlu/parse"`;

describe("the simulator's stand-ins", () => {
  test("with the simulator on, translation and NLU reach them in process: the flow gets English and an intent", async () => {
    const c = await startConversation({ ...REPORT, extra: "[simulator]\nenabled = true", endpointToml: STAND_INS });
    open.push(c);
    expect(await c.post([userText("hallo, wo ist meine bestellung?")])).toBe(200);
    const [reply] = messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }));
    expect(JSON.parse(reply!)).toEqual({ text: "hello, where is my order?", language: "de", intent: "order_status" });
  });

  test("with the simulator off, the made-up host is not answered: translation and NLU fail, the message is still answered", async () => {
    const c = await startConversation({ ...REPORT, endpointToml: STAND_INS });
    open.push(c);
    expect(await c.post([userText("hallo")])).toBe(200);
    const [reply] = messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }, 20_000));
    expect(JSON.parse(reply!)).toMatchObject({ text: "hallo", intent: null });
  });

  test("standInFetch hands every other URL to the real fetch, and names the stand-ins on an unknown path", async () => {
    const seen: string[] = [];
    const fetchThrough = standInFetch((async (input: string | URL | Request) => {
      seen.push(String(input instanceof Request ? input.url : input));
      return new Response("real");
    }) as typeof fetch);
    expect(await (await fetchThrough("https://api.deepl.com/v2/translate")).text()).toBe("real");
    expect(seen).toEqual(["https://api.deepl.com/v2/translate"]);
    const unknown = await fetchThrough("http://stand-in.simulator/elsewhere");
    expect(unknown.status).toBe(404);
  });

  test("the demo's settings point its translation and NLU at the stand-ins", () => {
    const demo = demoConfig("/tmp", {}).endpoints[0]!;
    expect(demo.translation).toMatchObject({ provider: "libretranslate", url: "http://stand-in.simulator/translation/libretranslate", flow_language: "en" });
    expect(demo.nlu).toMatchObject({ kind: "http", url: "http://stand-in.simulator/nlu/parse" });
  });
});
