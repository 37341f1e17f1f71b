/**
 * The Page's Messenger profile (docs/messenger-profile.md): declared in the settings, checked against Meta's rules,
 * applied in the background at start only where it differs, within Meta's rate limit, and on
 * demand through the admin API; a failure is reported, never fatal.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { SettingsError } from "../../src/config/problems.ts";
import { PAGE_ID, PAGE_TOKEN } from "../helpers/config.ts";
import { configFromToml } from "../helpers/config.ts";
import { startConversation, until, type Conversation } from "../helpers/conversation.ts";
import { tempDir } from "../helpers/tmp.ts";

const KEY = "test-admin-key-0123456789";
const PROFILE = `[endpoints.messenger_profile]
get_started_payload = "GET_STARTED"
greeting = { default = "Hi {{user_first_name}}, ask us anything.", fr_FR = "Bonjour !" }
whitelisted_domains = ["https://shop.example.test"]
[[endpoints.messenger_profile.persistent_menu]]
locale = "default"
composer_input_disabled = false
call_to_actions = [
  { type = "postback", title = "Talk to a human", payload = "HUMAN" },
  { type = "nested", title = "More", call_to_actions = [ { type = "web_url", title = "Our site", url = "https://shop.example.test" } ] },
]
[[endpoints.messenger_profile.ice_breakers]]
question = "Where is my order?"
payload = "ORDER_STATUS"
`;

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

async function start(options: Parameters<typeof startConversation>[0] = {}) {
  const c = await startConversation({ extra: `[admin]\napi_keys = ["${KEY}"]`, endpointToml: PROFILE, ...options });
  open.push(c);
  return c;
}

const profileCalls = (c: Conversation) => c.graph.calls.filter((x) => x.path.endsWith("/messenger_profile"));

async function api(c: Conversation, method: string, path: string) {
  const response = await fetch(`${c.url}${path}`, { method, headers: { authorization: `Bearer ${KEY}` } });
  return { status: response.status, body: (await response.json()) as any, headers: response.headers };
}

describe("settings", () => {
  const check = (profile: string) => {
    const dir = tempDir("profile-settings");
    try {
      configFromToml(
        `[flows.a]\nkind = "script"\nmodule = "builtin:echo"\n[[endpoints]]\nid = "support"\nflow = "a"\nverify_token = "vvvvvvvv"\npages = [ { id = "${PAGE_ID}", access_token = "tok" } ]\n${profile}`,
        { dir: dir.path },
      );
      return [];
    } catch (error) {
      if (!(error instanceof SettingsError)) throw error;
      return error.problems.map((p) => `${p.path}: ${p.message}`);
    } finally {
      dir.remove();
    }
  };

  test("a menu without Get Started, a greeting without default, too many buttons or ice breakers: each named by its key", () => {
    const problems = check(`[endpoints.messenger_profile]
greeting = { fr_FR = "Bonjour" }
[[endpoints.messenger_profile.persistent_menu]]
locale = "default"
call_to_actions = [ ${Array.from({ length: 21 }, (_, i) => `{ type = "postback", title = "B${i}", payload = "P${i}" }`).join(", ")} ]
${Array.from({ length: 5 }, (_, i) => `[[endpoints.messenger_profile.ice_breakers]]\nquestion = "Q${i}"\npayload = "P${i}"`).join("\n")}
`);
    expect(problems.some((p) => p.startsWith("endpoints[0].messenger_profile.greeting:") && p.includes('"default"'))).toBe(true);
    expect(problems.some((p) => p.startsWith("endpoints[0].messenger_profile.get_started_payload:"))).toBe(true);
    expect(problems.some((p) => p.startsWith("endpoints[0].messenger_profile.persistent_menu[0].call_to_actions:") && p.includes("at most 20"))).toBe(true);
    expect(problems.some((p) => p.startsWith("endpoints[0].messenger_profile.ice_breakers:") && p.includes("at most 4"))).toBe(true);
  });

  test("a title over 30 characters and a non-https whitelisted domain are refused", () => {
    const problems = check(`[endpoints.messenger_profile]
get_started_payload = "GO"
whitelisted_domains = ["http://plain.example.test"]
[[endpoints.messenger_profile.persistent_menu]]
call_to_actions = [ { type = "postback", title = "${"x".repeat(31)}", payload = "P" } ]
`);
    expect(problems.some((p) => p.includes("whitelisted_domains"))).toBe(true);
    expect(problems.some((p) => p.includes("persistent_menu[0].call_to_actions[0].title"))).toBe(true);
  });

  test("the declared example is valid", () => {
    expect(check(PROFILE)).toEqual([]);
  });
});

describe("applying", () => {
  test("at start the profile is read and written where it differs; nested menu items become buttons", async () => {
    const c = await start();
    await until(() => profileCalls(c).length >= 2);
    const [read, write] = profileCalls(c);
    expect(read!.method).toBe("GET");
    expect(write!.method).toBe("POST");
    const profile = c.graph.messengerProfile(PAGE_ID);
    expect(profile.get_started).toEqual({ payload: "GET_STARTED" });
    expect(profile.greeting).toEqual([
      { locale: "default", text: "Hi {{user_first_name}}, ask us anything." },
      { locale: "fr_FR", text: "Bonjour !" },
    ]);
    expect(profile.persistent_menu).toEqual([
      {
        locale: "default",
        composer_input_disabled: false,
        call_to_actions: [
          { type: "postback", title: "Talk to a human", payload: "HUMAN" },
          { type: "web_url", title: "Our site", url: "https://shop.example.test" },
        ],
      },
    ]);
    expect(profile.ice_breakers).toEqual([{ locale: "default", call_to_actions: [{ question: "Where is my order?", payload: "ORDER_STATUS" }] }]);
    expect(profile.whitelisted_domains).toEqual(["https://shop.example.test"]);
    await until(async () => (await api(c, "GET", "/api/endpoints")).body.endpoints[0].pages[0].messenger_profile?.status === "updated");
  });

  test("a restart with the same settings asks Meta nothing; a Page that already has the profile gets no write", async () => {
    const first = await start();
    await until(() => profileCalls(first).length >= 2);
    await until(async () => (await api(first, "GET", "/api/endpoints")).body.endpoints[0].pages[0].messenger_profile?.status === "updated");
    await first.close({ keepDir: true, keepGraph: true });
    open.splice(open.indexOf(first), 1);
    first.graph.reset(); // forgets recorded calls and the Page's profile
    const again = await start({ dir: first.dir, graph: first.graph });
    await until(async () => (await api(again, "GET", "/api/endpoints")).body.endpoints[0].pages[0].messenger_profile?.status === "unchanged");
    expect(profileCalls(again)).toHaveLength(0);
    // On demand it reads the Page (now empty: the fake was reset) and writes again.
    const applied = await api(again, "POST", "/api/endpoints/support/messenger-profile");
    expect(applied.status).toBe(200);
    expect(applied.body.pages[0].status).toBe("updated");
    // And once more: the Page has it now, so only a read.
    const unchanged = await api(again, "POST", "/api/endpoints/support/messenger-profile");
    expect(unchanged.body.pages[0].status).toBe("unchanged");
    expect(profileCalls(again).map((x) => x.method)).toEqual(["GET", "POST", "GET"]);
  });

  test("on demand it stays within Meta's rate limit: 429 with Retry-After instead of a 613 from Meta", async () => {
    const c = await start();
    await until(() => profileCalls(c).length >= 2);
    // 2 calls at start; each apply keeps room for a read and a write: 7 more fit in the 10.
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await api(c, "POST", "/api/endpoints/support/messenger-profile")).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200]);
    const limited = await api(c, "POST", "/api/endpoints/support/messenger-profile");
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    // The error answer carries the per-Page results too.
    expect(limited.body).toMatchObject({ error: "rate_limited", pages: [{ page_id: PAGE_ID, status: "rate_limited" }] });
    expect(profileCalls(c).every((x) => x.status === 200)).toBe(true); // Meta never said 613
  });

  test("a failure is reported and not fatal: the bot answers, /api/endpoints shows it", async () => {
    const dir = tempDir("profile-fail");
    const c = await start({ dir });
    // Exhaust Meta's limit for the Page before our start's calls are counted by the fake.
    await until(() => profileCalls(c).length >= 2);
    for (let i = 0; i < 8; i++) await fetch(`${c.graph.url}/v23.0/me/messenger_profile?fields=get_started&access_token=${PAGE_TOKEN}`);
    const failed = await api(c, "POST", "/api/endpoints/support/messenger-profile");
    expect(failed.status).toBe(502);
    expect(failed.body.pages[0]).toMatchObject({ status: "failed" });
    expect(failed.body.pages[0].error).toContain("rate limit");
    expect(c.logs.lines.some((l) => l.includes("could not apply the Messenger profile"))).toBe(true);
    const health = await fetch(`${c.url}/readyz`);
    expect(health.status).toBe(200);
  });

  test("POST /api/endpoints/{id}/messenger-profile without a declared profile is 400", async () => {
    const c = await start({ endpointToml: "" });
    const answer = await api(c, "POST", "/api/endpoints/support/messenger-profile");
    expect(answer.status).toBe(400);
    expect(answer.body.message).toContain("[endpoints.messenger_profile]");
  });
});
