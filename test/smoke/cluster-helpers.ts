/**
 * Scale-out through the compiled binary (cluster-binary.test.ts, test/bench/cluster.bench.ts):
 * several instances of the binary on one database file, behind a small load balancer in this
 * process, sending to one fake Graph API. Each instance reaches the fake through its own door
 * (`[graph] url = "${GRAPH_URL}"`, one URL per process), so that every send is known by who made
 * it; the checks read the sends, the instances' log lines and the lease table.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import type { Server } from "bun";
import { partitionOf, preferredOwner } from "../../src/cluster/partitions.ts";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { signBody } from "../../src/webhook/signature.ts";
import { installBinary, start, type Running } from "./binary-helpers.ts";

export const CLUSTER = {
  page: "104857600012345",
  token: "cluster-page-token",
  secret: "cluster-app-secret-0123456789",
  endpoint: "cl",
  partitions: 16,
} as const;

/**
 * A load balancer as in front of the instances: each POST goes to the next instance round-robin;
 * one whose connection fails (refused, reset, or no answer within `timeoutMs`) is skipped for
 * `downMs` and the request goes to the next one, as a real balancer with retries does. An answer,
 * whatever its status, is passed on.
 */
export class LoadBalancer {
  readonly #backends: { label: string; base: string; downUntil: number }[] = [];
  #next = 0;
  #server: Server<undefined> | null = null;
  /** POSTs taken; tries that failed and went to the next instance; answers other than 200; POSTs no instance answered. */
  readonly stats = { requests: 0, retried: 0, notOk: 0, failed: 0 };

  constructor(private readonly options: { timeoutMs?: number; downMs?: number } = {}) {}

  start(): this {
    this.#server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => this.#forward(request) });
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server!.port}`;
  }

  add(label: string, base: string): void {
    this.remove(label);
    this.#backends.push({ label, base, downUntil: 0 });
  }

  remove(label: string): void {
    const i = this.#backends.findIndex((b) => b.label === label);
    if (i >= 0) this.#backends.splice(i, 1);
  }

  stop(): void {
    this.#server?.stop(true);
  }

  async #forward(request: Request): Promise<Response> {
    const body = await request.arrayBuffer();
    const url = new URL(request.url);
    this.stats.requests++;
    const n = this.#backends.length;
    const first = this.#next++;
    const rotated = Array.from({ length: n }, (_, i) => this.#backends[(first + i) % n]!);
    const now = Date.now();
    // Instances that failed lately last (still tried: they may be back).
    const order = [...rotated.filter((b) => b.downUntil <= now), ...rotated.filter((b) => b.downUntil > now)];
    for (const backend of order) {
      try {
        const response = await fetch(`${backend.base}${url.pathname}${url.search}`, {
          method: request.method,
          headers: {
            "content-type": request.headers.get("content-type") ?? "application/json",
            "x-hub-signature-256": request.headers.get("x-hub-signature-256") ?? "",
          },
          body,
          ...(this.options.timeoutMs ? { signal: AbortSignal.timeout(this.options.timeoutMs) } : {}),
        });
        const answer = await response.arrayBuffer();
        if (response.status !== 200) this.stats.notOk++;
        return new Response(answer, { status: response.status });
      } catch {
        backend.downUntil = Date.now() + (this.options.downMs ?? 1_000);
        this.stats.retried++;
      }
    }
    this.stats.failed++;
    return new Response("no instance answered", { status: 502 });
  }
}

/** A message the fake Graph API took, and which process sent it. */
export interface Sent {
  by: string;
  /** Date.now() when the request reached the process's door. */
  at: number;
  recipient: string;
  /** "me:<install>:<outbox id>" */
  metadata: string;
  text: string;
}

export interface Instance {
  label: string;
  /** `[cluster] instance_id`, when the rig sets it (else the default, host:pid). */
  instanceId: string | undefined;
  server: Running;
  base: string;
  door: Server<undefined>;
}

export interface RigOptions {
  /** The database file's name under data/. */
  name: string;
  leaseSeconds: number;
  pollMs: number;
  /** Whether each instance gets `instance_id` from $INSTANCE_ID (else the default, host:pid). */
  instanceIds?: boolean;
  /** `[cluster] enabled` (default true). */
  clustered?: boolean;
  /** A script flow's source (default: builtin:echo). */
  flowSource?: string;
  /** The balancer's time limit per try (default none). */
  balancerTimeoutMs?: number;
  /** The fake Graph API sends echoes of our messages back through the balancer (default true). */
  echoes?: boolean;
  /** Record every send by process (default true; a benchmark may go straight to the fake). */
  doors?: boolean;
  /** Log level of the instances (default info). */
  logLevel?: string;
}

/** A user: the PSID of user `u`. */
export const psidOf = (u: number) => String(6301234567000000 + u);
/** The partition of a user of the rig's endpoint and Page. */
export const partitionOfUser = (psid: string) => partitionOf({ endpointId: CLUSTER.endpoint, pageId: CLUSTER.page, userId: psid }, CLUSTER.partitions);
/** What builtin:echo (and the test flows) answer to `text`. */
export const answerTo = (text: string) => `You said: ${text}`;
/** The text of message `m` of user `u` in phase `tag`. */
export const textOf = (tag: string, u: number, m: number) => `${tag} u${u} m${m}`;

export class ClusterRig {
  readonly graph: FakeGraph;
  readonly balancer: LoadBalancer;
  readonly instances = new Map<string, Instance>();
  /** Every process started, dead or alive, in order (their log lines stay for the checks). */
  readonly started: Instance[] = [];
  readonly sends: Sent[] = [];
  /** POSTs the users had to make again because the balancer answered anything but 200. */
  userRetries = 0;
  readonly #replyWaits = new Map<string, (() => void)[]>();
  readonly #answered = new Set<string>();
  readonly #lastTimestamp = new Map<string, number>();

  private constructor(
    readonly options: RigOptions,
    readonly dir: string,
    readonly bin: string,
    readonly cleanup: () => void,
    graph: FakeGraph,
  ) {
    this.graph = graph;
    this.balancer = new LoadBalancer({ timeoutMs: options.balancerTimeoutMs, downMs: 1_000 }).start();
    graph.configureWebhook({ url: `${this.balancer.url}/webhooks/${CLUSTER.endpoint}`, appSecret: CLUSTER.secret }, { echoes: options.echoes ?? true });
  }

  static async create(options: RigOptions): Promise<ClusterRig> {
    const install = await installBinary();
    mkdirSync(join(install.dir, "data"));
    const graph = await FakeGraph.start({ pages: [{ id: CLUSTER.page, token: CLUSTER.token, appSecret: CLUSTER.secret }] });
    const rig = new ClusterRig(options, install.dir, install.bin, install.cleanup, graph);
    if (options.flowSource) writeFileSync(join(install.dir, "flow.ts"), options.flowSource);
    // One settings file for every instance; each has its own port, Graph door and (maybe) id.
    writeFileSync(join(install.dir, "settings.toml"), rig.#settings());
    return rig;
  }

  get dbFile(): string {
    return join(this.dir, "data", `${this.options.name}.db`);
  }

  #settings(): string {
    const o = this.options;
    return `[server]
host = "127.0.0.1"
port = 0
[storage]
url = "file:data/${o.name}.db"
[log]
level = "${o.logLevel ?? "info"}"
[graph]
url = "\${GRAPH_URL}"
min_retry_delay_ms = 50
[cluster]
enabled = ${o.clustered ?? true}
lease_seconds = ${o.leaseSeconds}
poll_ms = ${o.pollMs}
${o.instanceIds ? 'instance_id = "${INSTANCE_ID}"' : ""}
[flows.echo]
kind = "script"
module = "${o.flowSource ? "./flow.ts" : "builtin:echo"}"
[[endpoints]]
id = "${CLUSTER.endpoint}"
flow = "echo"
verify_token = "cluster-verify-token"
app_secret = "${CLUSTER.secret}"
pages = [ { id = "${CLUSTER.page}", access_token = "${CLUSTER.token}" } ]
[endpoints.messenger]
typing_indicators = false
message_delay_ms = 0
`;
  }

  /** Starts an instance and puts it behind the balancer once it listens (its partitions taken). */
  async startInstance(label: string, options: { instanceId?: string } = {}): Promise<Instance> {
    if (this.instances.has(label)) throw new Error(`instance ${label} runs already`);
    const instanceId = this.options.instanceIds ? (options.instanceId ?? label) : undefined;
    const door = this.#door(label);
    const server = start(this.bin, ["serve", "--config", "settings.toml", "--port", "0"], {
      cwd: this.dir,
      env: { GRAPH_URL: this.options.doors === false ? this.graph.url : `http://127.0.0.1:${door.port}`, ...(instanceId ? { INSTANCE_ID: instanceId } : {}) },
    });
    const base = String((await server.waitFor((l) => l.msg === "listening", 30_000)).url);
    const instance: Instance = { label, instanceId, server, base, door };
    this.instances.set(label, instance);
    this.started.push(instance);
    this.balancer.add(label, base);
    return instance;
  }

  /** The fake Graph API as this process sees it: every message it takes is recorded as sent by `label`. */
  #door(label: string): Server<undefined> {
    return Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (request) => {
        const at = Date.now();
        const body = await request.text();
        const response = await this.graph.handle(new Request(request.url, { method: request.method, headers: request.headers, body: body || undefined }));
        if (response.status === 200 && new URL(request.url).pathname.endsWith("/messages")) {
          const sent = JSON.parse(body) as { recipient?: { id?: string }; message?: { text?: string; metadata?: string } };
          if (sent.message)
            this.#record({ by: label, at, recipient: String(sent.recipient?.id), metadata: String(sent.message.metadata), text: String(sent.message.text) });
        }
        return response;
      },
    });
  }

  #record(sent: Sent): void {
    this.sends.push(sent);
    const key = `${sent.recipient}\n${sent.text}`;
    this.#answered.add(key);
    for (const wake of this.#replyWaits.get(key) ?? []) wake();
    this.#replyWaits.delete(key);
  }

  /** Resolves when the fake Graph API has taken `text` for `psid`. */
  waitForReply(psid: string, text: string, timeoutMs = 30_000): Promise<void> {
    const key = `${psid}\n${text}`;
    if (this.#answered.has(key)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply ${JSON.stringify(text)} to ${psid} within ${timeoutMs} ms`)), timeoutMs);
      const waits = this.#replyWaits.get(key) ?? [];
      waits.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.#replyWaits.set(key, waits);
    });
  }

  /** Resolves once `count` messages have been taken since the rig started. */
  async waitForSends(count: number, timeoutMs = 30_000): Promise<void> {
    await this.graph.waitForSends(count, {}, timeoutMs).catch(() => {
      throw new Error(`waited ${timeoutMs} ms for ${count} sends; saw ${this.sends.length}`);
    });
  }

  /**
   * A user writes `text` through the balancer, as Facebook posts it: signed, with its own mid, and
   * posted again (same mid) until it is acknowledged with 200.
   */
  async write(psid: string, text: string, mid: string): Promise<void> {
    const timestamp = Math.max(Date.now(), (this.#lastTimestamp.get(psid) ?? 0) + 1);
    this.#lastTimestamp.set(psid, timestamp);
    const body = JSON.stringify({
      object: "page",
      entry: [{ id: CLUSTER.page, time: timestamp, messaging: [{ sender: { id: psid }, recipient: { id: CLUSTER.page }, timestamp, message: { mid, text } }] }],
    });
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(`${this.balancer.url}/webhooks/${CLUSTER.endpoint}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-hub-signature-256": signBody(CLUSTER.secret, body) },
        body,
      });
      await response.arrayBuffer();
      if (response.status === 200) return;
      this.userRetries++;
      if (attempt >= 50) throw new Error(`the balancer answered ${response.status} to ${mid} 50 times`);
      await Bun.sleep(100); // Facebook posts it again a little later
    }
  }

  /**
   * `users` users write up to `messages` messages each, all users at once, each user one message
   * after the other (each POST waits for its 200). With `awaitReplies`, each user also waits for
   * the answer to a message before the next, and then `thinkMs` (a person typing). With `until`,
   * a user stops early once it holds (checked before each message after the first). Returns the
   * phase with how many messages each user wrote.
   */
  async converse(o: { users: number; messages: number; tag: string; awaitReplies?: boolean; thinkMs?: number; until?: () => boolean }): Promise<Phase> {
    const counts = Array.from({ length: o.users }, () => 0);
    await Promise.all(
      Array.from({ length: o.users }, async (_, u) => {
        for (let m = 1; m <= o.messages; m++) {
          if (m > 1 && o.until?.()) break;
          const text = textOf(o.tag, u, m);
          await this.write(psidOf(u), text, `m_${o.tag}_${u}_${m}`);
          counts[u] = m;
          if (o.awaitReplies) {
            await this.waitForReply(psidOf(u), answerTo(text), 60_000);
            if (o.thinkMs) await Bun.sleep(o.thinkMs * (0.5 + ((u * 7 + m * 13) % 10) / 10));
          }
        }
      }),
    );
    return { tag: o.tag, users: o.users, messages: o.messages, counts };
  }

  /** Resolves when every message of these phases has been answered. */
  async waitAnswered(phases: Phase[], timeoutMs = 30_000): Promise<void> {
    await Promise.all(
      phases.flatMap((p) =>
        Array.from({ length: p.users }, (_, u) =>
          Array.from({ length: countOf(p, u) }, (_, m) => this.waitForReply(psidOf(u), answerTo(textOf(p.tag, u, m + 1)), timeoutMs)),
        ).flat(),
      ),
    );
    await this.graph.flushWebhooks();
  }

  /** "took partitions" of every process that ran, in time order. */
  takes(): { by: string; at: number; partitions: number[] }[] {
    const all = this.started.flatMap((instance) =>
      instance.server.lines
        .filter((l) => typeof l.msg === "string" && l.msg.startsWith("this instance took partitions "))
        .map((l) => ({
          by: instance.label,
          at: Date.parse(String(l.time)),
          partitions: String(l.msg).slice("this instance took partitions ".length).split(", ").map(Number),
        })),
    );
    return all.sort((a, b) => a.at - b.at);
  }

  /** The lease table as the database has it now. */
  async leases(): Promise<{ partition: number; owner: string; epoch: number; expiresAt: number }[]> {
    return this.#query("SELECT partition, owner, epoch, expires_at FROM cluster_leases ORDER BY partition", (r) => ({
      partition: Number(r.partition),
      owner: String(r.owner),
      epoch: Number(r.epoch),
      expiresAt: Number(r.expires_at),
    }));
  }

  /** The instance ids of the instances running now, as they joined (with the default ids: found by their pid). */
  async instanceIds(): Promise<Map<string, string>> {
    const members = await this.#query("SELECT instance_id, about FROM cluster_members", (r) => ({ id: String(r.instance_id), about: String(r.about) }));
    const ids = new Map<string, string>();
    for (const instance of this.instances.values()) {
      if (instance.instanceId) ids.set(instance.label, instance.instanceId);
      else {
        const member = members.find((m) => (JSON.parse(m.about) as { pid?: number }).pid === instance.server.proc.pid);
        if (member) ids.set(instance.label, member.id);
      }
    }
    return ids;
  }

  /** Which running instance holds each partition now (by label; "" when none or expired). */
  async holders(): Promise<string[]> {
    const ids = await this.instanceIds();
    const labelOf = new Map([...ids].map(([label, id]) => [id, label]));
    const now = Date.now();
    return (await this.leases()).map((l) => (l.expiresAt > now ? (labelOf.get(l.owner) ?? "") : ""));
  }

  /**
   * Resolves when every partition is held by the instance rendezvous hashing prefers among the
   * running ones (the cluster has settled after a join or a departure).
   */
  async settled(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      const ids = await this.instanceIds();
      if (ids.size === this.instances.size) {
        const labelOf = new Map([...ids].map(([label, id]) => [id, label]));
        const preferred = Array.from({ length: CLUSTER.partitions }, (_, p) => labelOf.get(preferredOwner(p, [...ids.values()])!) ?? "");
        const holders = await this.holders();
        if (holders.every((h, p) => h === preferred[p])) return;
        last = `held ${JSON.stringify(holders)}, preferred ${JSON.stringify(preferred)}`;
      }
      if (Date.now() > deadline) throw new Error(`the cluster did not settle within ${timeoutMs} ms: ${last}`);
      await Bun.sleep(100);
    }
  }

  /** `messenger_cluster_partitions_held` of each running instance, from its /metrics. */
  async heldByMetrics(): Promise<Map<string, number>> {
    const held = new Map<string, number>();
    for (const instance of this.instances.values()) {
      const text = await (await fetch(`${instance.base}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith("messenger_cluster_partitions_held"));
      held.set(instance.label, Number(line?.split(" ").at(-1) ?? Number.NaN));
    }
    return held;
  }

  /** Sends a signal; SIGKILL and SIGTERM also take the instance off the balancer's list once it has exited. */
  async signal(label: string, signal: "SIGKILL" | "SIGTERM" | "SIGSTOP" | "SIGCONT"): Promise<number | null> {
    const instance = this.instances.get(label)!;
    instance.server.proc.kill(signal);
    if (signal !== "SIGKILL" && signal !== "SIGTERM") return null;
    const code = await instance.server.exited;
    this.instances.delete(label);
    this.balancer.remove(label);
    return code;
  }

  /** What is wrong with the answers to these phases: every message answered, in each user's order, duplicates within `maxDuplicatesPerLane`. */
  answerProblems(phases: Phase[], maxDuplicatesPerLane: number): string[] {
    const problems: string[] = [];
    const users = Math.max(...phases.map((p) => p.users));
    for (let u = 0; u < users; u++) {
      const psid = psidOf(u);
      const expected = phases.filter((p) => u < p.users).flatMap((p) => Array.from({ length: countOf(p, u) }, (_, m) => answerTo(textOf(p.tag, u, m + 1))));
      const ofUser = this.sends.filter((s) => s.recipient === psid && expected.includes(s.text));
      const byId = new Map<string, Sent[]>();
      for (const s of ofUser) byId.set(s.metadata, [...(byId.get(s.metadata) ?? []), s]);
      // Each outbox id counted once, in the order first sent.
      const got = [...byId.values()].map((copies) => copies[0]!.text);
      if (JSON.stringify(got) !== JSON.stringify(expected)) problems.push(`user ${u}: answers ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
      const repeated = [...byId].filter(([, copies]) => copies.length > 1);
      if (repeated.length > maxDuplicatesPerLane || repeated.some(([, copies]) => copies.length > 2)) {
        problems.push(
          `user ${u}: sent more than once: ${repeated.map(([id, copies]) => `${id} ×${copies.length} by ${copies.map((c) => c.by).join(", ")}`).join("; ")}`,
        );
      }
    }
    return problems;
  }

  /** The outbox ids sent more than once, with who sent them. */
  duplicates(): { metadata: string; by: string[] }[] {
    const byId = new Map<string, string[]>();
    for (const s of this.sends) byId.set(s.metadata, [...(byId.get(s.metadata) ?? []), s.by]);
    return [...byId].filter(([, by]) => by.length > 1).map(([metadata, by]) => ({ metadata, by }));
  }

  /**
   * Sends by an instance that did not hold the user's partition: a send is the sender's while it
   * is the latest to have taken the partition (its "took partitions" log line), and for
   * `marginMs` after another instance took it (a send that started before the move may reach the
   * fake a little later; an owner stops starting sends well before: the lease's last fifth, or a
   * renewal before it releases).
   */
  fencingProblems(marginMs = 400): string[] {
    const takes = this.takes();
    const problems: string[] = [];
    for (const s of this.sends) {
      const p = partitionOfUser(s.recipient);
      const moves = takes.filter((t) => t.partitions.includes(p));
      const owned = moves.some((t, i) => t.by === s.by && t.at <= s.at && (i === moves.length - 1 || s.at <= moves[i + 1]!.at + marginMs));
      if (!owned) {
        const before = moves.filter((t) => t.at <= s.at).at(-1);
        problems.push(
          `${s.by} sent ${s.metadata} (partition ${p}) at ${s.at}, when ${before ? `${before.by} had taken it at ${before.at}` : "no one had taken it"}`,
        );
      }
    }
    return problems;
  }

  /** Ends every process still running (SIGKILL), the balancer, the doors and the fake, and removes the folder. */
  async close(): Promise<void> {
    for (const instance of this.started) {
      if (instance.server.proc.exitCode === null && instance.server.proc.signalCode === null) {
        instance.server.proc.kill("SIGCONT");
        instance.server.proc.kill("SIGKILL");
        await instance.server.exited;
      }
      instance.door.stop(true);
    }
    this.balancer.stop();
    await this.graph.stop();
    this.cleanup();
  }

  async #query<T>(sql: string, map: (row: Record<string, unknown>) => T): Promise<T[]> {
    const client = createClient({ url: `file:${this.dbFile}` });
    try {
      return (await client.execute(sql)).rows.map((r) => map(r as unknown as Record<string, unknown>));
    } finally {
      client.close();
    }
  }
}

/** One round of messages: `users` users × `messages` messages (or as many as `counts` says per user), their texts tagged. */
export interface Phase {
  tag: string;
  users: number;
  messages: number;
  counts?: number[];
}

const countOf = (p: Phase, u: number) => p.counts?.[u] ?? p.messages;
