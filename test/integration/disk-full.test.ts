/**
 * The disk-full drill: the database on a small filesystem, filled while messages arrive, then
 * freed. Where this process may mount one (root, with the right to mount), the filesystem is a real
 * 8 MiB tmpfs and a filler file takes its free space: SQLite meets ENOSPC as it would on a full disk.
 * Elsewhere the drill runs on an injected write failure at the storage layer
 * (test/helpers/failing-storage.ts); the test's name says which ran (DISK_FULL_DRILL=inject forces
 * the fallback).
 *
 * What must hold: no 200 for an event that was not stored; no loop (the agent is asked once per
 * input, the log stays short); no reply sent twice; everything acknowledged processed once after
 * the space comes back, including what Facebook sends again after a 503.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { rmSync, writeSync, openSync, closeSync } from "node:fs";
import { PAGE_ID } from "../helpers/config.ts";
import { countingFlow } from "../helpers/counting-flow.ts";
import { startConversation, until, userText } from "../helpers/conversation.ts";
import { failingStorage } from "../helpers/failing-storage.ts";
import { tempDir } from "../helpers/tmp.ts";

// DISK_FULL_DRILL=inject runs the fallback even where a tmpfs could be mounted.
const tryMount = (path: string) => process.env.DISK_FULL_DRILL !== "inject" && mountTmpfs(path, "8m");
const dir = tempDir("disk-full");
const mounted = tryMount(dir.path);
const restartDir = tempDir("disk-full-restart");
const restartMounted = tryMount(restartDir.path);
const storage = failingStorage();
const cleanup: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const step of cleanup) await step();
  for (const [d, m] of [
    [dir, mounted],
    [restartDir, restartMounted],
  ] as const) {
    if (m) Bun.spawnSync(["umount", "-l", d.path]);
    d.remove();
  }
});

function mountTmpfs(path: string, size: string): boolean {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return false;
  try {
    return Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", path], { stderr: "ignore", stdout: "ignore" }).exitCode === 0;
  } catch {
    return false;
  }
}

/** Writes a file until the filesystem is full; returns its path. */
function fillDisk(path: string): string {
  const file = `${path}/filler`;
  const fd = openSync(file, "w");
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    closeSync(fd);
  }
  return file;
}

const USERS = ["6301234567800001", "6301234567800002", "6301234567800003", "6301234567800004", "6301234567800005"];

describe(`disk-full drill (${mounted ? "a real 8 MiB tmpfs, filled with a file" : "no tmpfs could be mounted here: an injected SQLITE_FULL at the storage layer"})`, () => {
  test("filled while messages arrive, then freed: nothing lost, nothing twice, no loop", async () => {
    const agent = countingFlow();
    const c = await startConversation({
      dir,
      flows: agent.flows,
      echoes: true,
      storageHealth: { minDelayMs: 20, maxDelayMs: 200 },
      ...(mounted ? {} : { wrapDatabase: storage.wrap }),
    });
    cleanup.push(() => c.close({ keepDir: true }));
    const conversation = c;
    const acknowledged = new Set<string>();
    const refused: ReturnType<typeof userText>[] = [];
    let n = 0;
    const send = async () => {
      const item = userText(`message ${++n}`, { psid: USERS[n % USERS.length] });
      const status = await conversation.post([item]);
      if (status === 200) acknowledged.add(item.message.text);
      else {
        expect(status).toBe(503); // "retry later", never a 4xx that Facebook would not retry
        refused.push(item);
      }
    };

    const answered = (text: string) => conversation.graph.sends().some((s) => s.message?.text === `re: ${text}`);
    const fill = () => {
      if (mounted) return fillDisk(dir.path);
      storage.fail(true);
      return null;
    };
    let filler: string | null = null;

    // Before: everything works.
    for (let i = 0; i < 10; i++) await send();
    await until(() => [...acknowledged].every(answered));

    // Four users' agents are still thinking when the disk fills (the fifth user's lane is free for message 16) ...
    agent.hold((text) => ["message 12", "message 13", "message 14", "message 15"].includes(text));
    for (let i = 0; i < 5; i++) await send();
    await until(() => agent.calls.size === 15);
    // ... and a reply is on its way: Graph takes it, the disk fills before its answer arrives.
    conversation.graph.failNext({ timeoutMs: 600, deliver: true }, { when: (body) => body.message?.text === "re: message 16" });
    conversation.graph.onSend((s) => {
      if (s.message?.text === "re: message 16" && filler === null) filler = fill() ?? "injected";
    });
    await send();
    await until(() => filler !== null);

    // Messages keep arriving on the full disk; then the agents answer.
    for (let i = 0; i < 24; i++) await send();
    agent.release();
    await until(async () => (await fetch(`${conversation.url}/readyz`)).status === 503, 5_000);
    // Let the lanes run into the wall for a while: ten more failed writes (probes, retries) at
    // growing intervals, whatever they are.
    const failedBefore = conversation.app.health.failedWrites;
    await until(() => conversation.app.health.failedWrites >= failedBefore + 10, 20_000);
    expect(refused.length).toBeGreaterThan(0); // the drill did fill the disk
    for (const [text, calls] of agent.calls) expect({ text, calls }).toEqual({ text, calls: 1 });
    expect(conversation.graph.sends().filter((s) => s.message?.text === "re: message 16")).toHaveLength(1);
    const loudLines = conversation.logs.records().filter((r) => r.level === "error" || r.level === "warn");
    expect(loudLines.length).toBeLessThan(6); // the storage failure once, a turn kept: not a line per retry or per refused webhook

    // The space comes back; Facebook sends the refused webhooks again.
    if (mounted) rmSync(filler!);
    else storage.fail(false);
    for (let attempt = 0; refused.length > 0 && attempt < 50; attempt++) {
      const item = refused.shift()!;
      const status = await conversation.post([item]);
      if (status === 200) acknowledged.add(item.message.text);
      else {
        refused.push(item);
        await Bun.sleep(100);
      }
    }
    expect(refused).toHaveLength(0);
    await until(() => [...acknowledged].every(answered), 30_000);
    await conversation.graph.flushWebhooks();

    // Every acknowledged input: stored, run once, answered once.
    const stored = await conversation.database.client.execute("SELECT json_extract(event, '$.message.text'), status FROM inbox WHERE kind = 'message'");
    const storedTexts = new Map(stored.rows.map((r) => [String(r[0]), String(r[1])]));
    for (const text of acknowledged) {
      expect({ text, status: storedTexts.get(text) }).toEqual({ text, status: "done" });
      expect({ text, calls: agent.calls.get(text) }).toEqual({ text, calls: 1 });
      const replies = conversation.graph.sends().filter((s) => s.message?.text === `re: ${text}`);
      expect({ text, replies: replies.length }).toEqual({ text, replies: 1 });
    }
    expect(acknowledged.size).toBe(n); // every message, in the end
    await until(async () => (await fetch(`${conversation.url}/readyz`)).status === 200);
    expect(conversation.graph.sends().every((s) => s.pageId === PAGE_ID)).toBe(true);
  });

  test("a restart on a still-full disk starts, paused: no agent is called until there is space", async () => {
    const agent = countingFlow();
    const injected = failingStorage();
    const options = {
      dir: restartDir,
      flows: agent.flows,
      storageHealth: { minDelayMs: 20, maxDelayMs: 200 },
      ...(restartMounted ? {} : { wrapDatabase: injected.wrap }),
    };
    const first = await startConversation(options);
    for (const text of ["a", "b"]) expect(await first.post([userText(text)])).toBe(200);
    await until(() => first.graph.sends().length === 2);
    const filler = restartMounted ? fillDisk(restartDir.path) : null;
    if (!restartMounted) injected.fail(true);
    // Acknowledged now if it still fits (small inserts may), refused otherwise: either is fine.
    const late = userText("c");
    const lateStatus = await first.post([late]);
    await first.close({ keepDir: true, keepGraph: true });

    // If "c" was stored, its turn may have run before the stop without being able to store its
    // outcome: then it runs once more after the restart (at least once), never more.
    const before = agent.calls.get("c") ?? 0;
    const second = await startConversation({ ...options, graph: first.graph });
    cleanup.push(() => second.close({ keepDir: true }));
    expect((await fetch(`${second.url}/readyz`)).status).toBe(503);
    // Several probes fail (time passes, and the lanes are asked to go on by none of them) ...
    await until(() => second.app.health.failedWrites >= 5, 20_000);
    expect(agent.calls.get("c") ?? 0).toBe(before); // ... and nothing runs while the disk is full
    if (filler) rmSync(filler);
    else injected.fail(false);
    if (lateStatus !== 200) expect(await second.post([late])).toBe(200); // Facebook's redelivery
    await until(() => second.graph.sends().some((s) => s.message?.text === "re: c"), 15_000);
    expect(agent.calls.get("c")).toBe(before + 1);
    expect(second.graph.sends().filter((s) => s.message?.text === "re: c")).toHaveLength(1);
    await until(async () => (await fetch(`${second.url}/readyz`)).status === 200);
  });
});
