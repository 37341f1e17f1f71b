CREATE TABLE `analytics_daily` (
	`endpoint_id` text NOT NULL,
	`day` text NOT NULL,
	`inputs` integer DEFAULT 0 NOT NULL,
	`outputs` integer DEFAULT 0 NOT NULL,
	`sessions` integer DEFAULT 0 NOT NULL,
	`users` integer DEFAULT 0 NOT NULL,
	`failed_sends` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`endpoint_id`, `day`)
);
--> statement-breakpoint
CREATE TABLE `contact_users` (
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`user_id` text NOT NULL,
	`contact_id` text NOT NULL,
	`profile` text,
	`profile_status` text,
	`profile_expires_at` integer,
	`linked_at` integer,
	`first_seen_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	PRIMARY KEY(`endpoint_id`, `page_id`, `user_id`)
);
--> statement-breakpoint
CREATE INDEX `contact_users_contact` ON `contact_users` (`contact_id`);--> statement-breakpoint
CREATE INDEX `contact_users_user` ON `contact_users` (`user_id`);--> statement-breakpoint
CREATE TABLE `contacts` (
	`id` text PRIMARY KEY NOT NULL,
	`endpoint_id` text NOT NULL,
	`profile` text DEFAULT '{}' NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`last_active_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `contacts_idle` ON `contacts` (`endpoint_id`,`last_active_at`);--> statement-breakpoint
CREATE TABLE `transcripts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`user_id` text NOT NULL,
	`contact_id` text,
	`session_id` text,
	`direction` text NOT NULL,
	`source` text NOT NULL,
	`text` text,
	`data` text,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `transcripts_user` ON `transcripts` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `transcripts_session` ON `transcripts` (`session_id`,`id`);--> statement-breakpoint
CREATE INDEX `transcripts_contact` ON `transcripts` (`contact_id`,`id`);--> statement-breakpoint
CREATE INDEX `transcripts_age` ON `transcripts` (`created_at`);--> statement-breakpoint
CREATE INDEX `sessions_user` ON `sessions` (`user_id`,`endpoint_id`);