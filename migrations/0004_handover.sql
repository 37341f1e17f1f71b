CREATE TABLE `threads` (
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`user_id` text NOT NULL,
	`state` text NOT NULL,
	`owner_app_id` text,
	`metadata` text,
	`since` integer NOT NULL,
	`last_human_at` integer,
	`paused_until` integer,
	`last_error` text,
	`retry_at` integer,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`endpoint_id`, `page_id`, `user_id`)
);
--> statement-breakpoint
CREATE INDEX `threads_open` ON `threads` (`state`) WHERE state <> 'bot';