CREATE TABLE `translation_cache` (
	`key` text PRIMARY KEY NOT NULL,
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`user_id` text NOT NULL,
	`kind` text NOT NULL,
	`translation` text NOT NULL,
	`detected` text,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `translation_cache_expiry` ON `translation_cache` (`endpoint_id`,`expires_at`);--> statement-breakpoint
CREATE INDEX `translation_cache_user` ON `translation_cache` (`user_id`,`endpoint_id`);--> statement-breakpoint
CREATE TABLE `translation_users` (
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`user_id` text NOT NULL,
	`language` text NOT NULL,
	`votes` text NOT NULL,
	`inputs` integer NOT NULL,
	`locked_at` integer,
	`last_mid` text,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`endpoint_id`, `page_id`, `user_id`)
);
--> statement-breakpoint
CREATE INDEX `translation_users_age` ON `translation_users` (`endpoint_id`,`updated_at`);