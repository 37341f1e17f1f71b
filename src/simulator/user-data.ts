/**
 * What the simulator stores about a person — a simulated user's PSID and name — erased with the
 * rest of the person's data: a part of the user-data registry (people/user-data.ts), registered by
 * app.ts. It is not shown in the export (the simulator made it up).
 */
import { and, eq } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { simulatorUsers } from "../db/schema.ts";
import { statement } from "../db/statement.ts";
import type { UserKey } from "../core/user-key.ts";

export function simulatorData(database: Database) {
  const { db } = database;
  return {
    name: "simulator_users",
    erase(subject: { keys: readonly UserKey[] }) {
      return subject.keys.map((k) =>
        statement(
          db
            .delete(simulatorUsers)
            .where(and(eq(simulatorUsers.endpointId, k.endpointId), eq(simulatorUsers.pageId, k.pageId), eq(simulatorUsers.userId, k.userId))),
        ),
      );
    },
  };
}
