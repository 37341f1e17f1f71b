/**
 * Scale-out (docs/scale-out.md):
 *
 *   GET /api/cluster    this instance, the partitions it runs, the live instances and every lease
 */
import { Elysia } from "elysia";
import type { Leases } from "../cluster/leases.ts";
import { jsonResponse } from "../http/responses.ts";
import type { AdminGuard } from "./guard.ts";
import { answer } from "./openapi.ts";

export interface ClusterRouteDeps {
  guard: AdminGuard;
  /** Null with one instance (`[cluster] enabled = false`). */
  leases: Leases | null;
}

export function clusterRoutes({ guard, leases }: ClusterRouteDeps) {
  return new Elysia({ name: "admin-cluster" }).use(guard.plugin).get(
    "/api/cluster",
    async ({ requestId }) => {
      if (!leases) return jsonResponse(200, { enabled: false }, requestId);
      const view = await leases.view();
      return jsonResponse(200, { enabled: true, instance: view.instance, held: leases.held(), members: view.members, leases: view.leases }, requestId);
    },
    {
      detail: {
        summary:
          "With several instances: this instance, the partitions it runs (held), the instances alive and every partition's lease (owner, epoch, expiry); { enabled: false } with one instance",
        responses: { "200": answer("the cluster as the database has it") },
      },
    },
  );
}
