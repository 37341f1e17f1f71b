/**
 * The built-in demo: what `serve` runs when there is no settings file. One endpoint `demo` on the
 * built-in echo flow, the simulator switched on, the database in ./data/. The verify token and
 * app secret are random per start: the demo is for trying the product on this machine, not for
 * connecting a real Facebook App. Real-time translation and an NLU connector are on, pointed at
 * the simulator's stand-ins (simulator/stand-ins.ts): write in German, French or Spanish and the
 * agent gets English, understands a few shop intents, and answers in your language.
 */
import { randomBytes } from "node:crypto";
import { resolveSettings, type Config, type Env } from "./load.ts";

/** The simulator's stand-ins' made-up host (simulator/stand-ins.ts answers it in process). */
export const STAND_IN_ORIGIN = "http://stand-in.simulator";

export const DEMO_PAGE_ID = "100000000000001";

export function demoConfig(cwd: string, env: Env = process.env): Config {
  const secret = (prefix: string) => `${prefix}-${randomBytes(12).toString("hex")}`;
  return resolveSettings(
    {
      server: { host: "127.0.0.1", port: 8080 },
      storage: { url: "file:data/messenger-endpoint.db" },
      simulator: { enabled: true },
      flows: { demo: { kind: "script", module: "builtin:echo" } },
      endpoints: [
        {
          id: "demo",
          flow: "demo",
          verify_token: secret("demo-verify"),
          app_secret: secret("demo-secret"),
          pages: [{ id: DEMO_PAGE_ID, name: "Demo Page", access_token: secret("demo-page-token") }],
          messenger: { typing_indicators: true, message_delay_ms: 600 },
          // The simulator's stand-ins, in process (no account, no network): a small dictionary and rules.
          translation: {
            provider: "libretranslate",
            url: `${STAND_IN_ORIGIN}/translation/libretranslate`,
            flow_language: "en",
            user_language: "auto",
            lock_after: 2,
          },
          nlu: { kind: "http", url: `${STAND_IN_ORIGIN}/nlu/parse`, min_score: 0.5 },
          // Shown by the simulator as Messenger would (and applied to the stand-in's Page).
          messenger_profile: {
            get_started_payload: "HELLO",
            greeting: { default: "Hi! This is the built-in demo agent: it echoes what you say, in English, German, French or Spanish." },
            persistent_menu: [
              {
                locale: "default",
                composer_input_disabled: false,
                call_to_actions: [
                  { type: "postback", title: "Show buttons", payload: "SHOW_BUTTONS" },
                  { type: "postback", title: "Show cards", payload: "SHOW_CARDS" },
                  { type: "postback", title: "Talk to a person", payload: "HUMAN" },
                ],
              },
            ],
          },
        },
      ],
    },
    { dir: cwd, env, demo: true },
  );
}
