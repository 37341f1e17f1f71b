/** examples/messenger-endpoint.service: systemd accepts it, and it keeps what docs/operations.md promises. */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, tempDir } from "../helpers/index.ts";

const UNIT = readFileSync(join(REPO, "examples", "messenger-endpoint.service"), "utf8");
const SYSTEMD_ANALYZE = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((p) => existsSync(p));
const root = tempDir("systemd-unit");
afterAll(() => root.remove());

/** Every `Key=value` line of the unit (comments left out), the last one of each key winning. */
function directives(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match) out.set(match[1]!, match[2]!);
  }
  return out;
}

/** The unit with ExecStart pointing at `bin` (systemd-analyze verify needs the executable to exist). */
function unitWith(text: string, bin: string): string {
  const dir = root.sub(`u${Math.random().toString(36).slice(2, 8)}`);
  const exe = dir.write("messenger-endpoint", "#!/bin/sh\nexit 0\n");
  chmodSync(exe, 0o755);
  return dir.write("messenger-endpoint.service", text.replaceAll("/usr/local/bin/messenger-endpoint", bin === "" ? exe : bin));
}

async function verify(file: string): Promise<{ code: number; output: string }> {
  const proc = Bun.spawn([SYSTEMD_ANALYZE!, "verify", file], { stdout: "pipe", stderr: "pipe", env: { ...process.env, SYSTEMD_LOG_COLOR: "0" } });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  // Only what concerns this unit: a machine without systemd running may add lines about itself.
  return {
    code,
    output: `${out}${err}`
      .split("\n")
      .filter((l) => l.includes("messenger-endpoint"))
      .join("\n"),
  };
}

describe("examples/messenger-endpoint.service", () => {
  test("runs serve with the settings under /etc and its storage and driver folders under /var", () => {
    const d = directives(UNIT);
    expect(d.get("ExecStart")).toBe("/usr/local/bin/messenger-endpoint serve --config /etc/messenger-endpoint/messenger-endpoint.toml");
    expect(d.get("ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    expect(d.get("StateDirectory")).toBe("messenger-endpoint");
    expect(d.get("ConfigurationDirectory")).toBe("messenger-endpoint");
    expect(d.get("Restart")).toBe("on-failure");
    // src/native/libsql-addon.ts reads this first; ProtectSystem=strict leaves only the service's own folders writable.
    expect(d.get("Environment")).toBe(`MESSENGER_ENDPOINT_NATIVE_DIR=/var/cache/${d.get("CacheDirectory")}`);
    expect(readFileSync(join(REPO, "src", "native", "libsql-addon.ts"), "utf8")).toContain("process.env.MESSENGER_ENDPOINT_NATIVE_DIR");
    // The engine's stop grace (10 s) plus one Send API call (graph.timeout_ms, 10 s) and the checkpoint.
    expect(Number(d.get("TimeoutStopSec"))).toBeGreaterThanOrEqual(25);
  });

  test("is hardened, without MemoryDenyWriteExecute (Bun's JIT writes the code it runs)", () => {
    const d = directives(UNIT);
    expect(Object.fromEntries([...d].filter(([k]) => k.startsWith("Protect") || k.startsWith("Private") || k.startsWith("Restrict")))).toMatchObject({
      ProtectSystem: "strict",
      ProtectHome: "yes",
      PrivateTmp: "yes",
      PrivateDevices: "yes",
      ProtectKernelTunables: "yes",
      ProtectKernelModules: "yes",
      ProtectKernelLogs: "yes",
      ProtectControlGroups: "yes",
      RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
      RestrictNamespaces: "yes",
    });
    expect(d.get("NoNewPrivileges")).toBe("yes");
    expect(d.get("LockPersonality")).toBe("yes");
    expect(d.get("SystemCallArchitectures")).toBe("native");
    expect(d.get("CapabilityBoundingSet")).toBe("");
    expect(d.get("User")).toBe("messenger-endpoint");
    expect(d.has("MemoryDenyWriteExecute")).toBe(false);
  });

  test.skipIf(!SYSTEMD_ANALYZE)("systemd-analyze verify (skipped where it is not installed) accepts it without a warning", async () => {
    const { code, output } = await verify(unitWith(UNIT, ""));
    expect(output).toBe("");
    expect(code).toBe(0);
  });

  test.skipIf(!SYSTEMD_ANALYZE)("systemd-analyze verify (skipped where it is not installed) would catch a mistake in it", async () => {
    const broken = await verify(unitWith(UNIT.replace("ProtectSystem=strict", "ProtectSystem=strictest"), ""));
    expect(broken.output).toContain("strictest");
    const missing = await verify(unitWith(UNIT, "/nonexistent/messenger-endpoint"));
    expect(missing.code).not.toBe(0);
  });

  test.skipIf(!SYSTEMD_ANALYZE)("the backup service and timer of docs/operations.md (skipped where systemd-analyze is not installed) verify too", async () => {
    const doc = readFileSync(join(REPO, "docs", "operations.md"), "utf8");
    const units = [...doc.matchAll(/```ini\n# \/etc\/systemd\/system\/(messenger-endpoint-backup\.(?:service|timer))\n([\s\S]*?)```/g)];
    expect(units.map((m) => m[1])).toEqual(["messenger-endpoint-backup.service", "messenger-endpoint-backup.timer"]);
    const dir = root.sub("backup-units");
    const exe = dir.write("messenger-endpoint", "#!/bin/sh\nexit 0\n");
    chmodSync(exe, 0o755);
    for (const [, name, text] of units) dir.write(name!, text!.replaceAll("/usr/local/bin/messenger-endpoint", exe));
    for (const [, name] of units) {
      const { code, output } = await verify(dir.join(name!));
      expect(output).toBe("");
      expect(code).toBe(0);
    }
  });
});
