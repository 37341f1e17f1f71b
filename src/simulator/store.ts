/**
 * The simulated users, stored (table `simulator_users`, db/schema.ts) so that after a restart
 * their Graph calls still go to the stand-in, or are refused with the simulator off: never to
 * Facebook.
 */
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { columnList, rowReader } from "../db/rows.ts";
import { outbox, simulatorUsers, transcripts } from "../db/schema.ts";
import { storedJson } from "../db/values.ts";

export interface SimulatedUser {
  endpoint_id: string;
  page_id: string;
  user_id: string;
  name: string;
}

const USER_COLUMNS = ["endpointId", "pageId", "userId", "name"] as const;
const readUser = rowReader(simulatorUsers, USER_COLUMNS);
const SELECT_USERS = `SELECT ${columnList(simulatorUsers, USER_COLUMNS)} FROM simulator_users ORDER BY created_at`;
const INSERT_USER = "INSERT INTO simulator_users (endpoint_id, page_id, user_id, name, created_at) VALUES (?, ?, ?, ?, ?)";

/** A line of a user's conversation so far, as the page draws it (from `transcripts`). */
export interface HistoryLine {
  direction: "in" | "out";
  /** in: user | standby | echo (a person in the Page Inbox) …; out: flow | inject | notify */
  source: string;
  text: string | null;
  /** in: the input's data; out: the Messenger message. */
  data: unknown;
}

/** The transcript read with the user's replies not yet sent, in one snapshot. */
export interface StoredHistory {
  lines: HistoryLine[];
  /** The user's outbox messages still to be sent (pending or sending): the live stream shows them. */
  open: number[];
  /** The highest outbox id of the user's messages at the time of reading (0: none). */
  last: number;
}

const LINE_COLUMNS = ["direction", "source", "text", "data"] as const;
const readLine = rowReader(transcripts, LINE_COLUMNS);
const readOutboxId = rowReader(outbox, ["id"]);
const USER_IS = "endpoint_id = ? AND page_id = ? AND user_id = ?";
const SELECT_LINES = `SELECT ${columnList(transcripts, LINE_COLUMNS)} FROM transcripts WHERE ${USER_IS} ORDER BY id DESC LIMIT ?`;
/** The sources whose outbox messages have transcript lines (people/transcripts.ts writes them with the turn, inject or notify). */
const REPLIES = `${USER_IS} AND kind = 'message' AND source IN ('flow', 'inject', 'notify')`;
const SELECT_OPEN = `SELECT id FROM outbox WHERE ${REPLIES} AND status IN ('pending', 'sending') ORDER BY id`;
const SELECT_LAST = `SELECT id FROM outbox WHERE ${REPLIES} ORDER BY id DESC LIMIT 1`;

export class SimulatorStore {
  constructor(
    private readonly database: Database,
    private readonly writes: WriteQueue,
  ) {}

  /** Every stored simulated user, oldest first. */
  async users(): Promise<SimulatedUser[]> {
    const result = await this.database.client.execute(SELECT_USERS);
    return result.rows.map((row) => {
      const user = readUser(row);
      return { endpoint_id: user.endpointId, page_id: user.pageId, user_id: user.userId, name: user.name };
    });
  }

  /** Stores a new user (durably: the write queue commits before this resolves). */
  async add(user: SimulatedUser, createdAt: number): Promise<void> {
    await this.writes.run([{ sql: INSERT_USER, args: [user.endpoint_id, user.page_id, user.user_id, user.name, createdAt] }]);
  }

  /**
   * The user's last `limit` transcript lines, oldest first, with the replies not yet sent, read in
   * one transaction: a turn commits its transcript and its outbox items together, so the two agree.
   */
  async history(user: SimulatedUser, limit: number): Promise<StoredHistory> {
    const who = [user.endpoint_id, user.page_id, user.user_id];
    const [lines, open, last] = await this.database.client.batch(
      [
        { sql: SELECT_LINES, args: [...who, limit] },
        { sql: SELECT_OPEN, args: who },
        { sql: SELECT_LAST, args: who },
      ],
      "read",
    );
    return {
      lines: lines!.rows
        .map(readLine)
        .reverse()
        .map((l) => ({ direction: l.direction as "in" | "out", source: l.source, text: l.text, data: storedJson(l.data) })),
      open: open!.rows.map((row) => readOutboxId(row).id),
      last: last!.rows[0] ? readOutboxId(last!.rows[0]).id : 0,
    };
  }
}
