CREATE TABLE `simulator_users` (
	`endpoint_id` text NOT NULL,
	`page_id` text NOT NULL,
	`user_id` text NOT NULL,
	`name` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`endpoint_id`, `page_id`, `user_id`)
);
--> statement-breakpoint
CREATE INDEX `simulator_users_user` ON `simulator_users` (`user_id`);