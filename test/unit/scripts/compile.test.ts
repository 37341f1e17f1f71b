/**
 * scripts/compile.ts: the `bun build --compile` command line writes the embedded driver's SHA-256
 * into the binary, which src/native/libsql-addon.ts checks an unpacked driver against instead of
 * reading the embedded copy at each start (its pages would stay resident).
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { compileArgs } from "../../../scripts/compile.ts";

const REPO = join(import.meta.dir, "..", "..", "..");

describe("compileArgs", () => {
  test("defines the driver's digest for the binary", () => {
    const driver = "node_modules/@libsql/linux-x64-gnu";
    const args = compileArgs({ driver, outfile: "dist/x" });
    const digest = createHash("sha256")
      .update(readFileSync(join(REPO, driver, "index.node")))
      .digest("hex");
    expect(args[args.indexOf("--define") + 1]).toBe(`process.env.MESSENGER_ENDPOINT_LIBSQL_SHA256="${digest}"`);
  });
});
