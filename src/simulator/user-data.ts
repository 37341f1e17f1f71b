/**
 * What the simulator stores about a person — a simulated user's PSID and name — erased with the
 * rest of the person's data: a part of the user-data registry (people/user-data.ts), registered by
 * app.ts. It is not shown in the export (the simulator made it up).
 */
import type { Database } from "../db/client.ts";
import { simulatorUsers } from "../db/schema.ts";
import { userRows } from "../db/user-rows.ts";
import type { UserKey } from "../core/user-key.ts";

export function simulatorData(database: Database) {
  const rows = userRows(database.db, simulatorUsers);
  return {
    name: "simulator_users",
    erase: (subject: { keys: readonly UserKey[] }) => rows.erase(subject.keys),
  };
}
