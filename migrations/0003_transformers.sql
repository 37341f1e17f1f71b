CREATE TABLE `transformer_storage` (
	`endpoint_id` text NOT NULL,
	`storage_key` text NOT NULL,
	`value` text NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`endpoint_id`, `storage_key`)
);
--> statement-breakpoint
CREATE INDEX `transformer_storage_age` ON `transformer_storage` (`endpoint_id`,`updated_at`);