import { defineConfig } from "drizzle-kit";

// `npm run db:generate` turns changes in src/db/schema.ts into a new SQL migration in migrations/.
// The migrations are embedded in the binary and applied at start (src/db/migrate.ts).
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./migrations",
});
