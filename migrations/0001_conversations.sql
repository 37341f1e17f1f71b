CREATE TABLE `outbox` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`user_id` text NOT NULL,
	`source` text NOT NULL,
	`inbox_id` integer,
	`session_id` text,
	`kind` text NOT NULL,
	`body` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer,
	`first_attempt_at` integer,
	`last_error` text,
	`message_id` text,
	`created_at` integer NOT NULL,
	`sent_at` integer,
	`delivered_at` integer,
	`read_at` integer
);
--> statement-breakpoint
CREATE INDEX `outbox_user` ON `outbox` (`endpoint_id`,`page_id`,`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `outbox_open` ON `outbox` (`endpoint_id`,`page_id`,`user_id`,`id`) WHERE status IN ('pending', 'sending');--> statement-breakpoint
CREATE TABLE `page_state` (
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`paused_at` integer,
	`paused_reason` text,
	`token_fingerprint` text,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`endpoint_id`, `page_id`)
);
--> statement-breakpoint
CREATE TABLE `sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`user_id` text NOT NULL,
	`context` text DEFAULT '{}' NOT NULL,
	`created_at` integer NOT NULL,
	`last_active_at` integer NOT NULL,
	`ended_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `sessions_current` ON `sessions` (`endpoint_id`,`page_id`,`user_id`) WHERE ended_at IS NULL;