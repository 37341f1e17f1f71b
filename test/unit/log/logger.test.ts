import { describe, expect, test } from "bun:test";
import { createLogger, silentLogger } from "../../../src/log/logger.ts";
import { collectingLogger } from "../../helpers/index.ts";

describe("levels", () => {
  test("lines below the level are dropped", () => {
    const { log, records } = collectingLogger({ level: "warn" });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(records().map((r) => [r.level, r.msg])).toEqual([
      ["warn", "w"],
      ["error", "e"],
    ]);
  });

  test("debug lets everything through; info is the default", () => {
    const all = collectingLogger({ level: "debug" });
    all.log.debug("d");
    expect(all.lines).toHaveLength(1);
    const lines: string[] = [];
    const def = createLogger({ write: (l) => lines.push(l) });
    def.debug("d");
    def.info("i");
    expect(lines.map((l) => JSON.parse(l).level)).toEqual(["info"]);
  });

  test("enabled() answers for each level, also on children", () => {
    const { log } = collectingLogger({ level: "info" });
    expect(log.enabled("debug")).toBe(false);
    expect(log.enabled("info")).toBe(true);
    expect(log.enabled("error")).toBe(true);
    expect(log.child({ a: 1 }).enabled("debug")).toBe(false);
  });

  test("the silent logger writes nothing and does not throw", () => {
    silentLogger.error("nothing", { error: new Error("x") });
    expect(silentLogger.enabled("error")).toBe(true);
  });
});

describe("JSON lines", () => {
  test("one object per line with time, level, msg and the fields", () => {
    const { log, lines, records } = collectingLogger();
    log.info("hello", { endpoint: "support", count: 3 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("\n");
    const r = records()[0]!;
    expect(r).toMatchObject({ level: "info", msg: "hello", endpoint: "support", count: 3 });
    expect(new Date(r.time).toISOString()).toBe(r.time);
    expect(Object.keys(r).slice(0, 3)).toEqual(["time", "level", "msg"]);
  });

  test("child loggers add their fields to every line; call fields win; children nest", () => {
    const { log, records } = collectingLogger();
    const child = log.child({ endpoint: "support", request_id: "r-1" });
    child.info("a");
    child.child({ user: "u" }).warn("b", { request_id: "r-2" });
    log.info("c");
    expect(records()).toMatchObject([
      { msg: "a", endpoint: "support", request_id: "r-1" },
      { msg: "b", endpoint: "support", request_id: "r-2", user: "u" },
      { msg: "c" },
    ]);
    expect(records()[2]!.endpoint).toBeUndefined();
  });

  test("a multi-line message stays on one line", () => {
    const { log, lines } = collectingLogger();
    log.info("one\ntwo");
    expect(lines[0]!.split("\n")).toHaveLength(1);
    expect(JSON.parse(lines[0]!).msg).toBe("one\ntwo");
  });

  test("bigints are written as strings; unserializable fields do not lose the line", () => {
    const { log, records } = collectingLogger();
    log.info("big", { n: 12345678901234567890n });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    log.warn("cyclic", { cyclic });
    expect(records()[0]!.n).toBe("12345678901234567890");
    expect(records()[1]).toMatchObject({ level: "warn", msg: "cyclic", log_error: "unserializable fields" });
  });

  test("pretty format is human-readable, one line", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "pretty", write: (l) => lines.push(l) });
    log.warn("disk almost full", { endpoint: "support", free: 3 });
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN {2}disk almost full {2}endpoint=support free=3$/);
  });
});

describe("errors", () => {
  test("an Error field is written with name, message, code and cause", () => {
    const { log, records } = collectingLogger();
    const error = Object.assign(new TypeError("bad thing", { cause: new Error("root cause") }), { code: "E_BAD" });
    log.error("failed", { error });
    expect(records()[0]!.error).toEqual({ name: "TypeError", message: "bad thing", code: "E_BAD", cause: "root cause" });
  });

  test("a non-Error cause is stringified; no stack is written", () => {
    const { log, lines, records } = collectingLogger();
    log.error("failed", { error: new Error("outer", { cause: 42 }) });
    expect(records()[0]!.error).toEqual({ name: "Error", message: "outer", cause: "42" });
    expect(lines[0]).not.toContain("at ");
  });

  test("errors nested in fields are serialized too", () => {
    const { log, records } = collectingLogger();
    log.error("x", { detail: { errors: [new RangeError("r")] } });
    expect(records()[0]!.detail).toEqual({ errors: [{ name: "RangeError", message: "r" }] });
  });
});

describe("redaction", () => {
  const SECRET = "EAAGpagetokenSECRET0001";
  const APP = "test_app_secret_0123";

  test("registered secrets are replaced wherever they appear in the line", () => {
    const { log, lines } = collectingLogger({ secrets: [SECRET, APP] });
    log.info(`token ${SECRET} in the message`, {
      field: SECRET,
      nested: { url: `https://graph.example.test/me?access_token=${SECRET}&x=1` },
      error: new Error(`request failed for ${APP}`),
    });
    expect(lines[0]).not.toContain(SECRET);
    expect(lines[0]).not.toContain(APP);
    const r = JSON.parse(lines[0]!);
    expect(r.msg).toBe("token [redacted] in the message");
    expect(r.field).toBe("[redacted]");
    expect(r.nested.url).toBe("https://graph.example.test/me?access_token=[redacted]&x=1");
    expect(r.error.message).toBe("request failed for [redacted]");
  });

  test("child loggers redact too, in the pretty format as well", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "pretty", secrets: [SECRET], write: (l) => lines.push(l) });
    log.child({ token: SECRET }).info("x");
    expect(lines[0]).not.toContain(SECRET);
    expect(lines[0]).toContain("token=[redacted]");
  });

  test("a secret that contains another is redacted whole", () => {
    const { log, lines } = collectingLogger({ secrets: ["abcdef", "abcdefghijkl"] });
    log.info("abcdefghijkl abcdef");
    expect(JSON.parse(lines[0]!).msg).toBe("[redacted] [redacted]");
  });

  test("very short strings are not treated as secrets", () => {
    const { log, lines } = collectingLogger({ secrets: ["abc", ""] });
    log.info("abc is fine");
    expect(JSON.parse(lines[0]!).msg).toBe("abc is fine");
  });

  test("secrets with JSON-special characters", () => {
    const tricky = 'p"w\\d/xyz';
    const { log, lines } = collectingLogger({ secrets: [tricky] });
    log.info("x", { pw: tricky });
    // The JSON line escapes the quote and backslash: neither form may appear.
    expect(lines[0]).not.toContain(tricky);
    expect(lines[0]).not.toContain(JSON.stringify(tricky).slice(1, -1));
    expect(JSON.parse(lines[0]!).pw).toBe("[redacted]");
  });

  test("URL userinfo and credential-like query values are redacted in any line, registered or not", () => {
    for (const format of ["json", "pretty"] as const) {
      const lines: string[] = [];
      const log = createLogger({ format, write: (l) => lines.push(l) });
      log.error("cannot reach https://agent:s3cretpass@agent.example/api?code=AzFuncKey123&page=2: refused", {
        error: new Error("fetch libsql://u:dbpass99@db.example/x?authToken=tok_abcdef123 failed"),
        target: "https://x.example/hook?api_key=k_live_4242&sig=sas-signature&token=tkn-000111",
      });
      for (const secret of ["s3cretpass", "AzFuncKey123", "dbpass99", "tok_abcdef123", "k_live_4242", "sas-signature", "tkn-000111"])
        expect(lines[0]).not.toContain(secret);
      expect(lines[0]).toContain("https://[redacted]@agent.example/api?code=[redacted]&page=2: refused");
    }
  });
});
