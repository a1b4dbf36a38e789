CREATE TABLE `evaluations` (
	`id` text PRIMARY KEY NOT NULL,
	`run` text NOT NULL,
	`kind` text NOT NULL,
	`players` text NOT NULL,
	`params` text NOT NULL,
	`state` text NOT NULL,
	`results` text NOT NULL,
	`counted` text NOT NULL,
	`outcome` text,
	`cause` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `evaluations_run` ON `evaluations` (`run`,`created_at`);