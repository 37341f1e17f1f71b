/**
 * Scale-out benchmark: one, two and three instances of the compiled binary on one database file,
 * builtin:echo, a fake Graph API in this process (test/smoke/cluster-helpers.ts runs them).
 *
 *   npm run bench:cluster
 *   BENCH_USERS=500 BENCH_MESSAGES=10 BENCH_FAILOVER_USERS=100 npm run bench:cluster
 *
 * 1. Throughput with 1, 2 and 3 instances (`[cluster] enabled`, the default lease and poll_ms),
 *    and one instance with `[cluster] enabled = false` (what the leases, the fence and the poll
 *    cost): every user sends BENCH_MESSAGES messages, one after the other (each POST waits for
 *    its 200), all users at once, at most 64 POSTs in flight; the load generator spreads the POSTs
 *    over the instances round-robin, so a user's next message mostly reaches another instance than
 *    the last one. Turns/s = replies / time from the first POST to the last reply; each user's
 *    replies must come in the order of their messages.
 * 2. Failover: two instances behind a load balancer that skips a refused instance,
 *    BENCH_FAILOVER_USERS users writing (each waits for the answer, then half a second or so),
 *    echoes on; kill -9 of one: from the kill to the first reply to a user it ran, with
 *    lease_seconds = 15 (the default) and 3; every acknowledged message answered, in order, and
 *    how many messages were sent twice (a send in flight at the kill whose echo was not stored).
 */
import { binaryUnderTest } from "../smoke/binary-helpers.ts";
import { CLUSTER, ClusterRig, partitionOfUser, psidOf } from "../smoke/cluster-helpers.ts";
import { fmt, peakRssMb, signedMessage, throughput } from "./load.ts";

const USERS = Number(process.env.BENCH_USERS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10);
const FAILOVER_USERS = Number(process.env.BENCH_FAILOVER_USERS ?? 100);
const IN_FLIGHT = 64;

let run = 0;

async function throughputWith(instances: number, clustered: boolean) {
  run++;
  const rig = await ClusterRig.create({ name: `throughput-${run}`, leaseSeconds: 15, pollMs: 200, instanceIds: true, clustered, echoes: false, doors: false });
  try {
    const labels = Array.from({ length: instances }, (_, i) => `i${i}`);
    for (const label of labels) await rig.startInstance(label);
    if (clustered) await rig.settled(60_000);
    const urls = labels.map((label) => `${rig.instances.get(label)!.base}/webhooks/${CLUSTER.endpoint}`);
    let next = 0;
    const t = await throughput({
      url: "",
      graph: rig.graph,
      users: USERS,
      messages: MESSAGES,
      inFlight: IN_FLIGHT,
      psid: (u) => String(6300000000000000 + run * 1_000_000 + u),
      request: (_url, user, text) => signedMessage(urls[next++ % urls.length]!, CLUSTER.page, CLUSTER.secret, user, text),
    });
    const rss = labels.reduce((sum, label) => sum + peakRssMb(rig.instances.get(label)!.server.proc.pid), 0);
    for (const label of labels) await rig.signal(label, "SIGTERM");
    return { ...t, rss };
  } finally {
    await rig.close();
  }
}

async function failover(leaseSeconds: number) {
  run++;
  // Facebook's echoes on (through the balancer): a send the killed instance made just before it died is recognised, not sent again.
  const rig = await ClusterRig.create({ name: `failover-${run}`, leaseSeconds, pollMs: 200, instanceIds: true });
  try {
    await rig.startInstance("a");
    await rig.startInstance("b");
    await rig.settled(60_000);
    let killedAt = Number.POSITIVE_INFINITY;
    const writing = rig.converse({
      tag: "f",
      users: FAILOVER_USERS,
      messages: 1_000,
      awaitReplies: true,
      thinkMs: 500,
      until: () => Date.now() > killedAt + (leaseSeconds + 5) * 1000,
    });
    await rig.waitForSends(FAILOVER_USERS * 2, 60_000);
    const holders = await rig.holders();
    killedAt = Date.now();
    await rig.signal("a", "SIGKILL");
    const phase = await writing;
    await rig.waitAnswered([phase], 60_000);
    const orphans = new Set(Array.from({ length: FAILOVER_USERS }, (_, u) => psidOf(u)).filter((psid) => holders[partitionOfUser(psid)] === "a"));
    const taken = rig.sends.filter((s) => orphans.has(s.recipient) && s.by === "b" && s.at > killedAt);
    const firstReply = Math.min(...taken.map((s) => s.at)) - killedAt;
    const problems = rig.answerProblems([phase], 1);
    const duplicates = rig.duplicates().length;
    await rig.signal("b", "SIGTERM");
    return { firstReply, orphans: orphans.size, problems, duplicates, messages: phase.counts!.reduce((a, b) => a + b, 0) };
  } finally {
    await rig.close();
  }
}

await binaryUnderTest(); // built once, before the clock of any phase starts
console.error(`cluster benchmark: ${USERS} users × ${MESSAGES} messages; failover with ${FAILOVER_USERS} users writing`);
const rows: string[] = [];
let ok = true;
for (const [instances, clustered] of [
  [1, false],
  [1, true],
  [2, true],
  [3, true],
] as const) {
  const t = await throughputWith(instances, clustered);
  rows.push(
    `| ${instances} | ${clustered ? "true" : "false"} | ${fmt(t.turnsPerSecond, 0)} | ${fmt(t.seconds, 1)} | ${t.replies} | ${t.orderOk ? "yes" : "NO"} | ${t.lost} | ${fmt(t.rss, 0)} |`,
  );
  if (!t.orderOk || t.lost > 0) ok = false;
}
const failovers: string[] = [];
for (const lease of [15, 3]) {
  const f = await failover(lease);
  failovers.push(
    `| ${lease} | ${fmt(f.firstReply, 0)} | ${f.orphans} of ${FAILOVER_USERS} | ${f.messages} | ${f.problems.length === 0 ? "yes" : "NO"} | ${f.duplicates} |`,
  );
  if (f.problems.length > 0) {
    ok = false;
    console.error(f.problems.slice(0, 5).join("\n"));
  }
}
console.log(
  `\nThroughput, ${USERS} users × ${MESSAGES} messages, builtin:echo, POSTs spread round-robin over the instances (${IN_FLIGHT} in flight at most):\n`,
);
console.log("| instances | [cluster] enabled | turns/s | seconds | replies | per-user order | lost | peak RSS MB (all instances) |");
console.log("|---:|---|---:|---:|---:|---|---:|---:|");
console.log(rows.join("\n"));
console.log(`\nFailover, two instances, ${FAILOVER_USERS} users writing, kill -9 of one:\n`);
console.log("| lease_seconds | kill → first reply to one of its users (ms) | its users | messages acknowledged | all answered, in order | sent twice |");
console.log("|---:|---:|---:|---:|---|---:|");
console.log(failovers.join("\n"));
if (!ok) process.exitCode = 1;
