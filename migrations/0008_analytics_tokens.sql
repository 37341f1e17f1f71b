CREATE TABLE `analytics_tokens_daily` (
	`endpoint_id` text NOT NULL,
	`flow` text NOT NULL,
	`day` text NOT NULL,
	`prompt_tokens` integer DEFAULT 0 NOT NULL,
	`completion_tokens` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`endpoint_id`, `flow`, `day`)
);
