CREATE TABLE `local_jobs` (
	`item_id` text PRIMARY KEY NOT NULL,
	`lease_id` text NOT NULL,
	`pid` integer NOT NULL,
	`started_at` integer NOT NULL,
	`log_file` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `work_outbox` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`item_id` text NOT NULL,
	`kind` text NOT NULL,
	`body` text NOT NULL,
	`created_at` integer NOT NULL
);
