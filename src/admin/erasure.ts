/**
 * A GDPR erasure as the admin API runs it. The rows are the user-data registry's job
 * (people/user-data.ts: every feature's part, deleted in one commit); what lives in memory is told
 * here, in this order:
 *
 *   1. the inbound lanes (engine), the reply lanes and the threads forget the person's PSIDs, so a
 *      turn in flight either committed before the deletes (and its rows go with the rest) or keeps
 *      nothing, and nothing more is sent to them;
 *   2. the registry commits every part's deletes;
 *   3. the session and contact caches forget them: after the commit, so that a read in between
 *      cannot fill them again with rows about to be deleted.
 */
import type { ConversationEngine } from "../conversations/engine.ts";
import type { SessionStore } from "../conversations/sessions.ts";
import type { Threads } from "../handover/threads.ts";
import type { Logger } from "../log/logger.ts";
import type { Contacts } from "../people/contacts.ts";
import type { Subject, UserData } from "../people/user-data.ts";
import type { ReplyLanes } from "../replies/lanes.ts";

export interface ErasureDeps {
  userData: UserData;
  engine: ConversationEngine;
  replies: ReplyLanes;
  threads: Threads;
  sessions: SessionStore;
  contacts: Contacts;
}

/** Erases everything stored about the subject; resolves with the number of rows deleted. */
export type Erase = (subject: Subject, log: Logger) => Promise<number>;

export function erasure({ userData, engine, replies, threads, sessions, contacts }: ErasureDeps): Erase {
  return async (subject, log) => {
    for (const key of subject.keys) {
      engine.forgetUser(key);
      replies.forgetUser(key);
      threads.forgetUser(key);
    }
    const rows = await userData.erase(subject, log);
    for (const key of subject.keys) {
      sessions.forget(key);
      contacts.forget(key);
    }
    return rows;
  };
}
