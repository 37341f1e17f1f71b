DROP INDEX `transcripts_session`;--> statement-breakpoint
DROP INDEX `transcripts_contact`;--> statement-breakpoint
DROP INDEX `transcripts_age`;