/** Secrets in URLs: the display form of a configured URL, and what is removed from free text. */
import { describe, expect, test } from "bun:test";
import { displayUrl, redactUrlCredentials, scrub, urlSecrets } from "../../../src/log/scrub.ts";

describe("displayUrl", () => {
  test("a libSQL URL is shown without its token or password (the start banner, the database errors)", () => {
    expect(displayUrl("libsql://db.example.turso.io?authToken=eyJSECRET")).toBe("libsql://db.example.turso.io?authToken=…");
    expect(displayUrl("http://admin:hunter2@127.0.0.1:8081/")).toBe("http://127.0.0.1:8081/");
    expect(displayUrl("libsql://user:s3cretpass@127.0.0.1:9/db?authToken=tok_abcdef123")).toBe("libsql://127.0.0.1:9/db?authToken=…");
    expect(displayUrl("http://127.0.0.1:8081")).toBe("http://127.0.0.1:8081");
  });

  test("every query value goes, whatever its name; names, path and port stay", () => {
    expect(displayUrl("https://user:pass@agent.example/api/turn?code=abc123==&x=1&flag&&y=")).toBe("https://agent.example/api/turn?code=…&x=…&…&&y=…");
    expect(displayUrl("https://agent.example:8443/v1?api-version=2024-06-01#frag")).toBe("https://agent.example:8443/v1?api-version=…#…");
  });

  test("a password with an @ in it goes whole; an @ in the path or query is not userinfo", () => {
    expect(displayUrl("https://me:p@ss@agent.example/x")).toBe("https://agent.example/x");
    expect(displayUrl("https://agent.example/users/a@b.example?to=c@d")).toBe("https://agent.example/users/a@b.example?to=…");
  });
});

describe("urlSecrets", () => {
  test("the password and the credential-like query values, raw and decoded", () => {
    expect(urlSecrets("libsql://user:s3cretpass@127.0.0.1:9/db?authToken=tok_abcdef123")).toEqual(["s3cretpass", "tok_abcdef123"]);
    expect(urlSecrets("https://agent.example/api?code=abc%2Fdef%3D%3D&api-version=2024-06-01")).toEqual(["abc%2Fdef%3D%3D", "abc/def=="]);
    expect(urlSecrets("https://x.example/?sig=sv-signature-value&key=apikey123456&token=t0k3n-value")).toEqual([
      "sv-signature-value",
      "apikey123456",
      "t0k3n-value",
    ]);
  });

  test("nothing from a plain URL; short values are not searched for (they would redact words)", () => {
    expect(urlSecrets("https://graph.facebook.com")).toEqual([]);
    expect(urlSecrets("https://u:pw@x.example/?key=abc")).toEqual([]);
  });
});

describe("redactUrlCredentials", () => {
  test("userinfo and credential-like query values of URLs anywhere in the text", () => {
    expect(redactUrlCredentials("cannot reach https://user:pass@agent.example/api?code=abc123&x=1: refused")).toBe(
      "cannot reach https://[redacted]@agent.example/api?code=[redacted]&x=1: refused",
    );
    expect(redactUrlCredentials('{"msg":"GET /x?api_key=K1&key=K2&access_token=EAAG&authToken=t&sig=s&password=p&X-Amz-Credential=c&page=2"}')).toBe(
      '{"msg":"GET /x?api_key=[redacted]&key=[redacted]&access_token=[redacted]&authToken=[redacted]&sig=[redacted]&password=[redacted]&X-Amz-Credential=[redacted]&page=2"}',
    );
  });

  test("ends a value at a quote, a JSON escape or whitespace; keeps sentence punctuation outside", () => {
    expect(redactUrlCredentials('"url":"http://h/?token=abc\\"x"')).toBe('"url":"http://h/?token=[redacted]\\"x"');
    expect(redactUrlCredentials("see http://h/?key=abc. Then")).toBe("see http://h/?key=[redacted]. Then");
  });

  test("leaves ordinary text, display forms and e-mail addresses alone", () => {
    for (const text of ["a@b.example wrote: 2 + 2 = 4", "https://agent.example/api?code=…", "page=2&limit=50", "http://h/a@b"]) {
      expect(redactUrlCredentials(text)).toBe(text);
    }
  });
});

test("scrub: known secrets (longest first) and URL credentials", () => {
  expect(scrub("token tok_abcdef123 and tok_abcdef123456 at libsql://u:pw@h/?authToken=zz", ["tok_abcdef123", "tok_abcdef123456", undefined, "abc"])).toBe(
    "token [redacted] and [redacted] at libsql://[redacted]@h/?authToken=[redacted]",
  );
});
