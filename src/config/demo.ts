/**
 * The built-in demo: what `serve` runs when there is no settings file. One endpoint `demo` on the
 * built-in echo flow, the simulator switched on, the database in ./data/. The verify token and
 * app secret are random per start: the demo is for trying the product on this machine, not for
 * connecting a real Facebook App.
 */
import { randomBytes } from "node:crypto";
import { resolveSettings, type Config, type Env } from "./load.ts";

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
          // Shown by the simulator as Messenger would (and applied to the stand-in's Page).
          messenger_profile: {
            get_started_payload: "HELLO",
            greeting: { default: "Hi! This is the built-in demo agent: it echoes what you say." },
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
