/**
 * The simulated users, stored (table `simulator_users`, db/schema.ts) so that after a restart
 * their Graph calls still go to the stand-in, or are refused with the simulator off: never to
 * Facebook.
 */
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { columnList, rowReader } from "../db/rows.ts";
import { simulatorUsers } from "../db/schema.ts";

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
}
