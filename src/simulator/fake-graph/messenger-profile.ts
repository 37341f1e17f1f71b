/**
 * The Page's Messenger Profile (`/me/messenger_profile`): set, read and delete its fields, with
 * Graph's rules (a persistent menu needs Get Started, a "default" locale, the lengths and counts)
 * and its rate limit of about 10 calls per 10 minutes per Page.
 */
import type { Clock } from "../../core/clock.ts";
import { PAYLOAD_MAX, charLength } from "../messenger-limits.ts";
import type { Answers } from "./answers.ts";
import { graphFail, invalid, unsupported } from "./graph-errors.ts";
import { isObject } from "./params.ts";
import type { FakePage } from "./types.ts";

const MESSENGER_PROFILE_FIELDS = ["get_started", "greeting", "persistent_menu", "ice_breakers", "whitelisted_domains", "account_linking_url", "commands"];
const MENU_ITEMS_MAX = 20;
const MENU_TITLE_MAX = 30;
const GREETING_TEXT_MAX = 160;
const ICE_BREAKERS_MAX = 4;
const WHITELISTED_DOMAINS_MAX = 50;
const RATE_LIMIT_CALLS = 10;
const RATE_LIMIT_WINDOW_MS = 10 * 60_000;

export class MessengerProfileEdge {
  #profiles = new Map<string, Record<string, unknown>>();
  /** Calls per Page (times), for the rate limit. */
  #calls = new Map<string, number[]>();

  constructor(
    private readonly answers: Answers,
    private readonly clock: Clock,
  ) {}

  /** The stored Messenger Profile of a Page. */
  of(pageId: string): Record<string, unknown> {
    return { ...this.#profiles.get(pageId) };
  }

  handle(page: FakePage, method: string, params: Record<string, unknown>): Response {
    const now = this.clock.now();
    const recent = (this.#calls.get(page.id) ?? []).filter((t) => t > now - RATE_LIMIT_WINDOW_MS);
    if (recent.length >= RATE_LIMIT_CALLS) graphFail(613, "Calls to this api have exceeded the rate limit.");
    this.#calls.set(page.id, [...recent, now]);
    const stored = this.#profiles.get(page.id) ?? {};
    switch (method) {
      case "POST": {
        const given = MESSENGER_PROFILE_FIELDS.filter((f) => params[f] !== undefined);
        if (given.length === 0) invalid(`Requires one of the params: ${MESSENGER_PROFILE_FIELDS.join(",")}`);
        const update: Record<string, unknown> = {};
        for (const field of given) update[field] = params[field];
        validateMessengerProfile(update, stored);
        this.#profiles.set(page.id, { ...stored, ...update });
        return this.answers.ok({ result: "success" });
      }
      case "GET": {
        const fields = fieldList(params.fields);
        if (!fields) invalid("The parameter fields is required");
        for (const field of fields) {
          if (!MESSENGER_PROFILE_FIELDS.includes(field)) invalid(`Tried accessing nonexisting field (${field}) on node type (MessengerProfile)`);
        }
        const found: Record<string, unknown> = {};
        for (const field of fields) if (stored[field] !== undefined) found[field] = stored[field];
        return this.answers.ok({ data: Object.keys(found).length > 0 ? [found] : [] });
      }
      case "DELETE": {
        const fields = fieldList(params.fields);
        if (!fields || fields.length === 0) invalid("The parameter fields is required");
        for (const field of fields) {
          if (!MESSENGER_PROFILE_FIELDS.includes(field)) invalid(`param fields[] must be one of {${MESSENGER_PROFILE_FIELDS.join(", ")}}`);
        }
        const next = { ...stored };
        for (const field of fields) delete next[field];
        if (next.persistent_menu !== undefined && next.get_started === undefined)
          invalid("You must delete the persistent menu before deleting the Get Started button.");
        this.#profiles.set(page.id, next);
        return this.answers.ok({ result: "success" });
      }
      default:
        unsupported(method, "messenger_profile");
    }
  }

  /** Profiles and the rate limit's calls are forgotten. */
  reset(): void {
    this.#profiles = new Map();
    this.#calls = new Map();
  }
}

/** `fields` as a list: an array, or comma-separated. */
function fieldList(value: unknown): string[] | null {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === "string" && value.trim() !== "")
    return value
      .split(",")
      .map((f) => f.trim())
      .filter(Boolean);
  return null;
}

function isHttpsUrl(value: unknown): boolean {
  if (typeof value !== "string" || !URL.canParse(value)) return false;
  return new URL(value).protocol === "https:";
}

function checkLocales(list: unknown[], param: string): void {
  if (!list.some((item) => isObject(item) && item.locale === "default")) invalid(`param ${param} must contain an entry with locale "default"`);
}

/** The rules Graph applies to a Messenger Profile update. `stored` is what the Page already has. */
function validateMessengerProfile(update: Record<string, unknown>, stored: Record<string, unknown>): void {
  if (update.get_started !== undefined) {
    const g = update.get_started;
    if (!isObject(g) || typeof g.payload !== "string" || g.payload === "") invalid("param get_started[payload] must be a non-empty string");
    if (charLength(g.payload) > PAYLOAD_MAX) invalid(`Length of param get_started[payload] must be less than or equal to ${PAYLOAD_MAX}`);
  }
  if (update.greeting !== undefined) {
    const greeting = update.greeting;
    if (!Array.isArray(greeting) || greeting.length === 0) invalid("param greeting must be a non-empty array");
    greeting.forEach((g, i) => {
      if (!isObject(g) || typeof g.locale !== "string" || typeof g.text !== "string") invalid(`param greeting[${i}] must have a locale and a text`);
      if (charLength(g.text) > GREETING_TEXT_MAX) invalid(`Length of param greeting[${i}][text] must be less than or equal to ${GREETING_TEXT_MAX}`);
    });
    checkLocales(greeting, "greeting");
  }
  if (update.persistent_menu !== undefined) {
    const menu = update.persistent_menu;
    if (!Array.isArray(menu) || menu.length === 0) invalid("param persistent_menu must be a non-empty array");
    if (update.get_started === undefined && stored.get_started === undefined)
      invalid("You must set a Get Started button if you also wish to use persistent menu.");
    menu.forEach((m, i) => {
      const p = `persistent_menu[${i}]`;
      if (!isObject(m) || typeof m.locale !== "string") invalid(`param ${p}[locale] is required`);
      if (m.call_to_actions === undefined) {
        if (m.composer_input_disabled !== true) invalid(`param ${p}[call_to_actions] is required`);
        return;
      }
      if (!Array.isArray(m.call_to_actions)) invalid(`param ${p}[call_to_actions] must be an array`);
      if (m.call_to_actions.length > MENU_ITEMS_MAX) invalid(`param ${p}[call_to_actions] must have at most ${MENU_ITEMS_MAX} elements`);
      m.call_to_actions.forEach((b: unknown, j: number) => {
        const bp = `${p}[call_to_actions][${j}]`;
        if (!isObject(b) || (b.type !== "postback" && b.type !== "web_url")) invalid(`param ${bp}[type] must be one of {postback, web_url}`);
        if (typeof b.title !== "string" || b.title === "") invalid(`param ${bp}[title] must be a non-empty string`);
        if (charLength(b.title) > MENU_TITLE_MAX) invalid(`Length of param ${bp}[title] must be less than or equal to ${MENU_TITLE_MAX}`);
        if (b.type === "postback" && (typeof b.payload !== "string" || b.payload === "" || charLength(b.payload) > PAYLOAD_MAX)) {
          invalid(`param ${bp}[payload] must be a non-empty string of at most ${PAYLOAD_MAX} characters`);
        }
        if (b.type === "web_url" && (typeof b.url !== "string" || !URL.canParse(b.url))) invalid(`param ${bp}[url] must be a valid URL`);
      });
    });
    checkLocales(menu, "persistent_menu");
  }
  if (update.ice_breakers !== undefined) {
    const ice = update.ice_breakers;
    if (!Array.isArray(ice)) invalid("param ice_breakers must be an array");
    const localized = ice.every((e) => isObject(e) && e.call_to_actions !== undefined);
    const groups: unknown[][] = localized ? ice.map((e) => (Array.isArray(e.call_to_actions) ? e.call_to_actions : [null])) : [ice];
    for (const group of groups) {
      if (group.length > ICE_BREAKERS_MAX) invalid(`param ice_breakers must have at most ${ICE_BREAKERS_MAX} questions per locale`);
      for (const q of group) {
        if (!isObject(q) || typeof q.question !== "string" || q.question === "" || typeof q.payload !== "string" || q.payload === "") {
          invalid("param ice_breakers entries need a non-empty question and payload");
        }
      }
    }
  }
  if (update.whitelisted_domains !== undefined) {
    const domains = update.whitelisted_domains;
    if (!Array.isArray(domains)) invalid("param whitelisted_domains must be an array");
    if (domains.length > WHITELISTED_DOMAINS_MAX) invalid(`param whitelisted_domains must have at most ${WHITELISTED_DOMAINS_MAX} elements`);
    domains.forEach((d, i) => {
      if (!isHttpsUrl(d)) invalid(`param whitelisted_domains[${i}] must be a valid https URL`);
    });
  }
  if (update.account_linking_url !== undefined && !isHttpsUrl(update.account_linking_url)) invalid("param account_linking_url must be a valid https URL");
  if (update.commands !== undefined && !Array.isArray(update.commands)) invalid("param commands must be an array");
}
