/** How long a fetched Facebook profile is cached: the `ext=` expiry of its picture URL (src/people/profiles.ts). */
import { expect, test } from "bun:test";
import { PROFILE_TTL, profileExpiry } from "../../../src/people/profiles.ts";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const MINUTE = 60_000;
const pic = (ext: number | string) => ({
  first_name: "Amelie",
  profile_pic: `https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=1&height=50&ext=${ext}&hash=AbC`,
});

test("the picture's ext= (epoch seconds), five minutes early", () => {
  const ext = NOW / 1000 + 3 * 3600;
  expect(profileExpiry(pic(ext), NOW)).toBe(ext * 1000 - 5 * MINUTE);
  expect(profileExpiry(pic(NOW / 1000 + 6 * 86_400), NOW)).toBe(NOW + 6 * 86_400_000 - 5 * MINUTE);
});

test("at most a week; at least five minutes, even for a picture already expired", () => {
  expect(profileExpiry(pic(NOW / 1000 + 30 * 86_400), NOW)).toBe(NOW + PROFILE_TTL.okMax);
  expect(profileExpiry(pic(NOW / 1000 - 3600), NOW)).toBe(NOW + 5 * MINUTE);
});

test("a day without a usable ext=: none, not a number, zero, no picture, a picture that is not a URL", () => {
  for (const profile of [
    { first_name: "A", profile_pic: "https://x.example/p.jpg" },
    pic("soon"),
    pic(0),
    { first_name: "A" },
    { profile_pic: "not a url?ext=99999999999" },
  ]) {
    expect(profileExpiry(profile, NOW)).toBe(NOW + PROFILE_TTL.ok);
  }
});
