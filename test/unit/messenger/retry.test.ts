import { describe, expect, test } from "bun:test";
import { GraphApiError, GraphNetworkError, GraphUnreadableAnswer } from "../../../src/messenger/graph.ts";
import { backoffDelay, classifySendError, type SendFailure } from "../../../src/messenger/retry.ts";

/** A Graph error envelope as the client turns it into an error. */
function apiError(code: number, subcode?: number, status = 400): GraphApiError {
  return new GraphApiError(status, code, subcode, "OAuthException", "AbCdEf123xyz", `(#${code}) test`);
}

const classify = (code: number, subcode?: number, status?: number): SendFailure => classifySendError(apiError(code, subcode, status));

describe("classifySendError", () => {
  test("a connection never made is retried; a timeout or a connection lost before the answer is unclear", () => {
    expect(classifySendError(new GraphNetworkError("refused", false, undefined, true))).toEqual({ action: "retry", throttled: false, reason: "network" });
    expect(classifySendError(new GraphNetworkError("reset", false))).toEqual({ action: "unclear", reason: "network" });
    expect(classifySendError(new GraphNetworkError("did not answer", true))).toEqual({ action: "unclear", reason: "timeout" });
  });

  test("a gateway's 500, 502 or 504 without a Graph answer is unclear; its 503 is retried; Graph's own 5xx is retried", () => {
    const gateway = (status: number) =>
      new GraphApiError(status, 2, undefined, undefined, undefined, `HTTP ${status} without a Graph error body`, false, false);
    for (const status of [500, 502, 504])
      expect(classifySendError(gateway(status))).toEqual({ action: "unclear", reason: `HTTP ${status} without a Graph answer` });
    expect(classifySendError(gateway(503))).toMatchObject({ action: "retry", throttled: false });
    expect(classify(2, undefined, 502)).toMatchObject({ action: "retry", throttled: false });
  });

  test("a 2xx whose answer cannot be read was taken: accepted, never retried", () => {
    expect(classifySendError(new GraphUnreadableAnswer(200, "cut off"))).toEqual({ action: "accepted", reason: "HTTP 200 with an unreadable answer" });
  });

  test("codes 1 and 2 are transient: retried without throttling", () => {
    for (const code of [1, 2]) {
      expect(classify(code)).toMatchObject({ action: "retry", throttled: false });
      expect(classify(code, 99)).toMatchObject({ action: "retry", throttled: false });
    }
    expect(classify(1, 1357046, 200)).toMatchObject({ action: "retry", throttled: false });
    expect(classify(2)).toEqual({ action: "retry", throttled: false, reason: "transient (2)" });
  });

  test("any 5xx answer is retried, whatever the code", () => {
    for (const status of [500, 502, 503, 504]) {
      expect(classify(2, undefined, status)).toMatchObject({ action: "retry", throttled: false });
      expect(classify(100, undefined, status)).toMatchObject({ action: "retry", throttled: false });
    }
  });

  test("rate limits (4, 17, 32, 613, 80000–80014) are retried as throttled", () => {
    for (const code of [4, 17, 32, 613, 80000, 80006, 80014]) {
      const failure = classify(code);
      expect(failure).toMatchObject({ action: "retry", throttled: true });
      if (failure.action === "retry") expect(failure.reason).toContain(String(code));
    }
    // Throttling wins over a 5xx status.
    expect(classify(613, undefined, 503)).toMatchObject({ action: "retry", throttled: true });
  });

  test("codes just outside the business-use-case range are not rate limits", () => {
    expect(classify(79999)).toEqual({ action: "drop", reason: "rejected" });
    expect(classify(80015)).toEqual({ action: "drop", reason: "rejected" });
  });

  test("551 and subcode 1545041 (whatever the code) drop the message: the user is unavailable", () => {
    expect(classify(551, 1545041)).toEqual({ action: "drop", reason: "user_unavailable" });
    expect(classify(551)).toEqual({ action: "drop", reason: "user_unavailable" });
    expect(classify(200, 1545041, 403)).toEqual({ action: "drop", reason: "user_unavailable" });
  });

  test("10 with a window subcode, or without subcode, drops the message: outside the window", () => {
    for (const subcode of [2018278, 2534022, 2018065, 2018108, undefined]) {
      expect(classify(10, subcode)).toEqual({ action: "drop", reason: "outside_window" });
    }
    expect(classify(10, 2018300)).toEqual({ action: "drop", reason: "rejected" });
  });

  test("190 pauses the Page; the reason names the code and subcode", () => {
    const failure = classify(190, 463);
    expect(failure.action).toBe("pause_page");
    if (failure.action === "pause_page") expect(failure.reason).toContain("190/463");
    const bare = classify(190, undefined, 401);
    expect(bare.action).toBe("pause_page");
    if (bare.action === "pause_page") expect(bare.reason).toContain("(190)");
    // Even when a proxy says 5xx, a bad token is a bad token.
    expect(classify(190, undefined, 500).action).toBe("pause_page");
  });

  test("100, 200 and unknown codes drop the message as rejected", () => {
    for (const [code, subcode, status] of [
      [100, undefined, 400],
      [100, 2018001, 400],
      [200, undefined, 403],
      [368, undefined, 400],
      [12345, undefined, 400],
    ] as const) {
      expect(classify(code, subcode, status)).toEqual({ action: "drop", reason: "rejected" });
    }
  });

  test("anything that is not a Graph error is dropped as rejected", () => {
    expect(classifySendError(new Error("boom"))).toEqual({ action: "drop", reason: "rejected" });
    expect(classifySendError(new TypeError("x is not a function"))).toEqual({ action: "drop", reason: "rejected" });
    expect(classifySendError("a string")).toEqual({ action: "drop", reason: "rejected" });
    expect(classifySendError(undefined)).toEqual({ action: "drop", reason: "rejected" });
  });

  test("the message text is never what decides", () => {
    const misleading = new GraphApiError(400, 100, undefined, "OAuthException", undefined, "Please retry your request later (rate limit)");
    expect(classifySendError(misleading)).toEqual({ action: "drop", reason: "rejected" });
  });
});

describe("backoffDelay", () => {
  const options = { minMs: 1000, maxMs: 30_000 };
  const middle = () => 0.5; // no jitter: 0.8 + 0.4 · 0.5 = 1

  test("doubles from minMs with each attempt", () => {
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, false, options, middle))).toEqual([1000, 2000, 4000, 8000, 16_000]);
  });

  test("attempt 0 or below counts as the first", () => {
    expect(backoffDelay(0, false, options, middle)).toBe(1000);
    expect(backoffDelay(-3, false, options, middle)).toBe(1000);
  });

  test("throttled failures start four times higher", () => {
    expect([1, 2, 3].map((a) => backoffDelay(a, true, options, middle))).toEqual([4000, 8000, 16_000]);
  });

  test("capped at maxMs, even for huge attempt numbers", () => {
    expect(backoffDelay(6, false, options, middle)).toBe(30_000);
    expect(backoffDelay(4, true, options, middle)).toBe(30_000);
    expect(backoffDelay(50, false, options, middle)).toBe(30_000);
    expect(backoffDelay(5000, true, options, middle)).toBe(30_000);
  });

  test("jitter stays within ±20 %, and the cap is never exceeded", () => {
    expect(backoffDelay(1, false, options, () => 0)).toBe(800);
    expect(backoffDelay(1, false, options, () => 0.999999)).toBe(1200);
    expect(backoffDelay(50, false, options, () => 0)).toBe(30_000);
    expect(backoffDelay(50, false, options, () => 0.999999)).toBe(30_000);
    expect(backoffDelay(5, false, options, () => 0.999999)).toBe(19_200);
    expect(backoffDelay(5, true, options, () => 0)).toBe(30_000);
  });

  test("with the real Math.random: always an integer within the bounds", () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      for (const throttled of [false, true]) {
        const base = options.minMs * (throttled ? 4 : 1) * 2 ** (attempt - 1);
        for (let i = 0; i < 50; i++) {
          const delay = backoffDelay(attempt, throttled, options);
          expect(Number.isInteger(delay)).toBe(true);
          expect(delay).toBeGreaterThanOrEqual(Math.min(options.maxMs, Math.floor(base * 0.8)));
          expect(delay).toBeLessThanOrEqual(Math.min(options.maxMs, Math.ceil(base * 1.2)));
        }
      }
    }
  });

  test("a maxMs below minMs wins", () => {
    expect(backoffDelay(1, true, { minMs: 1000, maxMs: 500 }, middle)).toBe(500);
  });
});

describe("marketing-message frequency limits", () => {
  test("4/2018354 and 9/2018352 are dropped, not retried", () => {
    expect(classifySendError(new GraphApiError(400, 4, 2018354, "OAuthException", "t", "limit"))).toEqual({ action: "drop", reason: "rejected" });
    expect(classifySendError(new GraphApiError(400, 9, 2018352, "OAuthException", "t", "limit"))).toEqual({ action: "drop", reason: "rejected" });
    expect(classifySendError(new GraphApiError(400, 4, undefined, "OAuthException", "t", "limit"))).toMatchObject({ action: "retry", throttled: true });
  });
});
