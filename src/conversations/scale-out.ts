/**
 * Scale-out (docs/scale-out.md), once everything has started: what moves when partitions move
 * between instances, the erasures another instance ran, and the look for work other instances
 * stored. The leases themselves are cluster/leases.ts; this connects them to the parts that hold
 * users' work and caches.
 */
import type { Leases } from "../cluster/leases.ts";
import { Poller } from "../cluster/poller.ts";
import type { Timers } from "../core/clock.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import type { Threads } from "../handover/threads.ts";
import type { Logger } from "../log/logger.ts";
import type { Contacts } from "../people/contacts.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import type { Translation } from "../translation/translation.ts";
import type { ConversationEngine } from "./engine.ts";
import type { SessionStore } from "./sessions.ts";

export interface ScaleOutDeps {
  leases: Leases;
  engine: ConversationEngine;
  replies: ReplyLanes;
  threads: Threads;
  sessions: SessionStore;
  contacts: Contacts;
  translation: Translation;
  timers: Timers;
  pollMs: number;
  log: Logger;
}

/** Starts the renewals and the look for work; returns the poller to stop at shutdown. */
export function runScaleOut(deps: ScaleOutDeps): Poller {
  const { leases, engine, replies, threads, sessions, contacts, translation, log } = deps;
  engine.onNotice((kind, key) => {
    if (kind === "thread_changed") {
      // An operator changed the thread through another instance: read it afresh, and let the lane look again.
      const same = (k: UserKey) => userKeyId(k) === userKeyId(key);
      void threads
        .gained(same)
        .then(() => replies.gained(same))
        .catch((error) => log.error("could not read a thread another instance changed", { error }));
      return;
    }
    engine.forgetUser(key);
    replies.forgetUser(key);
    threads.forgetUser(key);
    sessions.forget(key);
    contacts.forget(key);
    translation.forgetUser(key);
  });
  leases.onLost((lost) => {
    engine.lost(lost);
    replies.lost(lost);
    threads.lost(lost);
  });
  // Users gained: their work is read afresh (threads before the lanes, as at start), and the
  // caches of sessions, contacts and languages are read again (another instance changed them).
  let moving: Promise<void> = Promise.resolve();
  leases.onGained((gained) => {
    moving = moving
      .then(async () => {
        sessions.forgetAll();
        contacts.forgetAll();
        translation.forgetLanguages();
        await threads.gained((key) => gained(key) && leases.owns(key));
        await replies.gained(gained);
        await engine.gained(gained);
      })
      .catch((error) => log.error("could not take up the work of the partitions this instance took; it is taken up at the next change", { error }));
  });
  leases.run();
  const poller = new Poller(deps.timers, deps.pollMs, [() => engine.pickUp(), () => replies.pickUp()], log);
  poller.start();
  return poller;
}
