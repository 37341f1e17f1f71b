/** `serve` reloads its settings file on SIGHUP (cli/serve.ts, config/live.ts): logged, as `POST /api/reload` answers. */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "../helpers/child.ts";
import { settingsToml } from "../helpers/config.ts";
import { tempDir } from "../helpers/tmp.ts";

const dir = tempDir("reload-signal");
afterAll(() => dir.remove());

test("SIGHUP applies a valid file (and reports what needs a restart), and refuses an invalid one, logging every problem with its key path", async () => {
  const toml = settingsToml({ storageUrl: "file:data/bot.db", logLevel: "info" });
  const file = dir.write("messenger-endpoint.toml", toml);
  chmodSync(file, 0o600);
  const proc = Bun.spawn([process.execPath, join(REPO, "src", "main.ts"), "serve", "--host", "127.0.0.1", "--port", "0"], {
    cwd: dir.path,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir.path },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "ignore",
  });
  const records: Record<string, unknown>[] = [];
  // Resolves once the lines logged so far satisfy `condition` (checked now and at every new line).
  const waiters: { condition: () => boolean; resolve: () => void }[] = [];
  const check = () => {
    for (const w of waiters.splice(0)) w.condition() ? w.resolve() : waiters.push(w);
  };
  const until = (condition: () => boolean) =>
    new Promise<void>((resolve) => {
      waiters.push({ condition, resolve });
      check();
    });
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of proc.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        const record = JSON.parse(line) as Record<string, unknown>;
        records.push(record);
        check();
      }
    }
  })();
  try {
    await until(() => records.some((r) => r.msg === "listening"));
    const listening = records.find((r) => r.msg === "listening")!;
    expect((await fetch(`${String(listening.url)}/healthz`)).status).toBe(200);

    writeFileSync(file, toml.replace('level = "info"', 'level = "warn"').replace("max_body_bytes = 1048576", "max_body_bytes = 2048"));
    let from = records.length;
    const later = () => records.slice(from);
    proc.kill("SIGHUP");
    await until(() => later().some((r) => String(r.msg).startsWith("settings changed that take effect only after a restart")));
    expect(later().find((r) => String(r.msg).startsWith("settings changed that take effect only after a restart"))!.needs_restart).toEqual([
      "server.max_body_bytes",
    ]);

    writeFileSync(file, toml.replace('level = "info"', 'level = "loud"').replace('flow = "echo"', 'flow = "nowhere"'));
    from = records.length;
    const refused = () =>
      later()
        .filter((r) => String(r.msg).startsWith("settings reload refused: ") && typeof r.path === "string")
        .map((r) => r.path);
    proc.kill("SIGHUP");
    await until(() => refused().length >= 2);
    expect(refused().sort()).toEqual(["endpoints[0].flow", "log.level"]);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    await reading;
  }
}, 60_000);
