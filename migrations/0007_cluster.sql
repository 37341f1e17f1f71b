CREATE TABLE `cluster_fence` (
	`partition` integer NOT NULL,
	`owner` text NOT NULL,
	`epoch` integer NOT NULL,
	`inbox_id` integer,
	`outbox_id` integer
);
--> statement-breakpoint
CREATE TABLE `cluster_leases` (
	`partition` integer PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`epoch` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `cluster_members` (
	`instance_id` text PRIMARY KEY NOT NULL,
	`started_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`about` text NOT NULL
);
--> statement-breakpoint
-- The fence (docs/scale-out.md): an insert passes (and stores nothing) while the instance holds
-- the partition at that epoch and the inbox or outbox row named is still open; otherwise the
-- whole transaction is aborted, so a turn or a "sending" mark of an instance that lost the
-- partition commits nothing. Partition -1: no lease to check, only the row (one instance on a
-- libSQL server, where a commit whose answer was lost may be tried again).
CREATE TRIGGER `cluster_fence_check` BEFORE INSERT ON `cluster_fence`
BEGIN
	SELECT CASE
		WHEN (NEW.`partition` = -1 OR EXISTS (SELECT 1 FROM `cluster_leases` WHERE `partition` = NEW.`partition` AND `owner` = NEW.`owner` AND `epoch` = NEW.`epoch`))
			AND (NEW.`inbox_id` IS NULL OR EXISTS (SELECT 1 FROM `inbox` WHERE `id` = NEW.`inbox_id` AND `status` = 'pending'))
			AND (NEW.`outbox_id` IS NULL OR EXISTS (SELECT 1 FROM `outbox` WHERE `id` = NEW.`outbox_id` AND `status` IN ('pending', 'sending')))
		THEN RAISE(IGNORE)
		ELSE RAISE(ABORT, 'fenced: this instance no longer holds the partition, or the row was finished elsewhere')
	END;
END;
