DROP INDEX `inbox_dedup`;--> statement-breakpoint
CREATE UNIQUE INDEX `inbox_dedup_time` ON `inbox` (`endpoint_id`,`timestamp`,`dedup_key`);