/** An endpoint with an NLU connector, its Understanding on a manual clock, and inputs to give it. */
import { tmpdir } from "node:os";
import { afterAll, afterEach, beforeAll } from "bun:test";
import type { Config } from "../../../src/config/load.ts";
import type { EndpointSettings } from "../../../src/config/schema.ts";
import type { Timers } from "../../../src/core/clock.ts";
import type { UserKey } from "../../../src/core/user-key.ts";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import type { FlowInput } from "../../../src/flows/schema.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { Understanding, type UnderstandingDeps } from "../../../src/nlu/understanding.ts";
import { FakeNlu } from "../../../src/simulator/fake-nlu/fake-nlu.ts";
import { PAGE_ID, PSID, configFromToml, settingsToml } from "../../helpers/config.ts";
import { collectingLogger, type CollectingLogger } from "../../helpers/log.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";
import { sampleInput } from "../flows/support.ts";

export const KEY: UserKey = { endpointId: "support", pageId: PAGE_ID, userId: PSID };

export interface NluSetup {
  understanding: Understanding;
  endpoint: EndpointSettings;
  config: Config;
  clock: ManualClock;
  logs: CollectingLogger;
  metrics: Registry;
  /** understand() with a user's input; `payload`: the input came as a payload. */
  run(input: FlowInput, options?: { payload?: boolean; key?: UserKey }): Promise<boolean>;
  /** `messenger_nlu_requests_total` for a result. */
  requests(result: string): number;
  stop(): Promise<void>;
}

/** `nluToml`: the lines of `[endpoints.nlu]`; `more`: TOML after it (other endpoint tables). */
export async function nluSetup(
  nluToml: string,
  options: { more?: string; timers?: Timers; deps?: Partial<UnderstandingDeps>; dir?: string } = {},
): Promise<NluSetup> {
  const config = configFromToml(settingsToml({ extra: `[endpoints.nlu]\n${nluToml}\n${options.more ?? ""}` }), { dir: options.dir ?? tmpdir() });
  const clock = new ManualClock();
  const logs = collectingLogger();
  const metrics = new Registry();
  const understanding = await Understanding.start({
    config,
    // Only a script connector uses the database (its getSessionStorage); these tests pass one where they need it.
    database: undefined as unknown as Database,
    writes: undefined as unknown as WriteQueue,
    clock,
    timers: options.timers ?? clock,
    log: logs.log,
    metrics,
    ...options.deps,
  });
  const endpoint = config.endpoints[0]!;
  return {
    understanding,
    endpoint,
    config,
    clock,
    logs,
    metrics,
    run: (input, runOptions = {}) =>
      understanding.understand(endpoint, runOptions.key ?? KEY, input, { log: logs.log, isPayload: runOptions.payload ?? false }),
    requests: (result) => metrics.counter("messenger_nlu_requests_total", "").get({ endpoint: "support", result }),
    stop: () => understanding.stop(),
  };
}

/** A user's text input, with the Messenger event it came in. */
export function textInput(text: string, overrides: Partial<FlowInput> = {}): FlowInput {
  return sampleInput({ text, data: { request: { sender: { id: PSID }, message: { mid: "m_abc", text } } }, ...overrides });
}

/** A quick reply's input: its payload is the text. */
export function payloadInput(payload: string): FlowInput {
  return sampleInput({ text: payload, data: { payload, request: { message: { mid: "m_qr", text: "Yes", quick_reply: { payload } } } } });
}

/** A migrated database in a temporary folder, for what keeps session storage (a script, the hooks). */
export async function scratchDatabase(dir: string): Promise<{ database: Database; writes: WriteQueue; close(): Promise<void> }> {
  const database = await openDatabase(`file:${dir}/nlu.db`);
  await applyMigrations(database);
  const writes = new WriteQueue(database.client, { durable: database.durable });
  return {
    database,
    writes,
    async close() {
      await writes.drain();
      database.close();
    },
  };
}

/**
 * A fake NLU for a test file: started before its tests, reset after each, stopped at the end;
 * `track` a setup to have it stopped after the test.
 */
export function useFakeNlu(token: string) {
  const setups: NluSetup[] = [];
  const used = {
    fake: undefined as unknown as FakeNlu,
    track(s: NluSetup): NluSetup {
      setups.push(s);
      return s;
    },
  };
  beforeAll(() => {
    used.fake = FakeNlu.start({ token });
  });
  afterAll(() => used.fake.stop());
  afterEach(async () => {
    for (const s of setups.splice(0)) await s.stop();
    used.fake.reset();
  });
  return used;
}
