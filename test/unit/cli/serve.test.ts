/** The start banner never shows credentials carried in a libSQL URL. */
import { expect, test } from "bun:test";
import { withoutCredentials } from "../../../src/cli/serve.ts";

test("a libSQL URL is shown without its token or password", () => {
  expect(withoutCredentials("libsql://db.example.turso.io?authToken=eyJSECRET")).toBe("libsql://db.example.turso.io");
  expect(withoutCredentials("http://admin:hunter2@127.0.0.1:8081/")).toBe("http://127.0.0.1:8081/");
  expect(withoutCredentials("http://127.0.0.1:8081")).toBe("http://127.0.0.1:8081");
});
