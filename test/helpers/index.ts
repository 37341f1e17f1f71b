/** The test hub: one import for the helpers. */
export * from "./tmp.ts";
export * from "./log.ts";
export * from "./config.ts";
export * from "./webhook.ts";
export * from "./app.ts";
export * from "./cli.ts";
export * from "./child.ts";
