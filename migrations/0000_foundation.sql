CREATE TABLE `inbox` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`user_id` text NOT NULL,
	`kind` text NOT NULL,
	`standby` integer DEFAULT false NOT NULL,
	`dedup_key` text NOT NULL,
	`timestamp` integer NOT NULL,
	`received_at` integer NOT NULL,
	`event` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`last_error` text,
	`processed_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `inbox_dedup` ON `inbox` (`endpoint_id`,`dedup_key`);--> statement-breakpoint
CREATE INDEX `inbox_pending_lane` ON `inbox` (`endpoint_id`,`page_id`,`user_id`,`timestamp`,`id`) WHERE status = 'pending';--> statement-breakpoint
CREATE TABLE `meta` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL,
	`updated_at` integer DEFAULT (unixepoch() * 1000) NOT NULL
);
