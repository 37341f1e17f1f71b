/**
 * The rules of `[endpoints.messenger_profile]` that its schema cannot express (Meta's limits on
 * menus and ice breakers), for the settings check; and the menu's flattening, which the Messenger
 * profile's application (messenger/profile.ts) shares.
 */
import type { MessengerProfileSettings } from "./schema.ts";

export const MENU_ITEMS_MAX = 20;
export const ICE_BREAKERS_MAX = 4;

type Item = NonNullable<NonNullable<MessengerProfileSettings["persistent_menu"]>[number]["call_to_actions"]>[number];

/** Problems with the declared profile, each with its key path under the endpoint (for the settings check). */
export function profileProblems(settings: MessengerProfileSettings): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const at = (...path: (string | number)[]) => ["messenger_profile", ...path];
  if (settings.greeting && !("default" in settings.greeting))
    problems.push({ path: at("greeting"), message: 'a greeting needs a "default" locale entry (the text for every other locale)' });
  const menu = settings.persistent_menu;
  if (menu && menu.length > 0) {
    if (!settings.get_started_payload)
      problems.push({
        path: at("get_started_payload"),
        message: "missing: Meta shows a persistent menu only with a Get Started button; set get_started_payload",
      });
    if (!menu.some((m) => m.locale === "default"))
      problems.push({ path: at("persistent_menu"), message: 'a persistent menu needs an entry with locale = "default"' });
    menu.forEach((m, i) => {
      const flat = flattenMenu(m.call_to_actions ?? [], (j, message) => problems.push({ path: at("persistent_menu", i, "call_to_actions", ...j), message }));
      if (flat.length > MENU_ITEMS_MAX)
        problems.push({
          path: at("persistent_menu", i, "call_to_actions"),
          message: `${flat.length} buttons (nested groups count their items): Meta allows at most ${MENU_ITEMS_MAX}`,
        });
      if (flat.length === 0 && !m.composer_input_disabled)
        problems.push({ path: at("persistent_menu", i, "call_to_actions"), message: "empty: add a button, or set composer_input_disabled = true" });
    });
  }
  const perLocale = new Map<string, number>();
  for (const q of settings.ice_breakers ?? []) perLocale.set(q.locale, (perLocale.get(q.locale) ?? 0) + 1);
  for (const [locale, n] of perLocale)
    if (n > ICE_BREAKERS_MAX)
      problems.push({ path: at("ice_breakers"), message: `${n} ice breakers for locale "${locale}": Meta allows at most ${ICE_BREAKERS_MAX}` });
  return problems;
}

/**
 * Meta removed nested menus (v8.0): a `nested` group's items become buttons of their own, their
 * titles kept (at most 30 characters).
 */
export function flattenMenu(
  items: Item[],
  problem: (path: (string | number)[], message: string) => void,
  path: (string | number)[] = [],
): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  items.forEach((item, j) => {
    const here = [...path, j];
    if (item.type === "nested") {
      if (!Array.isArray(item.call_to_actions) || item.call_to_actions.length === 0) problem(here, "a nested group needs call_to_actions");
      else out.push(...flattenMenu(item.call_to_actions as Item[], problem, [...here, "call_to_actions"]));
      return;
    }
    if (item.type === "postback") {
      if (!item.payload) problem(here, "a postback button needs a payload");
      out.push({ type: "postback", title: item.title, payload: item.payload });
    } else {
      if (!item.url || !/^https?:\/\//.test(item.url)) problem(here, "a web_url button needs an http(s) url");
      out.push({
        type: "web_url",
        title: item.title,
        url: item.url,
        ...(item.webview_height_ratio ? { webview_height_ratio: item.webview_height_ratio } : {}),
      });
    }
  });
  return out;
}
