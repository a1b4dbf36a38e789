CREATE TABLE `match_results` (
	`run` text NOT NULL,
	`a` text NOT NULL,
	`b` text NOT NULL,
	`wins` integer NOT NULL,
	`draws` integer NOT NULL,
	`losses` integer NOT NULL,
	PRIMARY KEY(`run`, `a`, `b`)
);
--> statement-breakpoint
CREATE TABLE `models` (
	`id` text PRIMARY KEY NOT NULL,
	`run` text NOT NULL,
	`generation` integer NOT NULL,
	`parent` text,
	`item_id` text,
	`node` text,
	`file` text NOT NULL,
	`state` text NOT NULL,
	`metrics` text,
	`created_at` integer NOT NULL,
	`decided_at` integer
);
--> statement-breakpoint
CREATE INDEX `models_run` ON `models` (`run`,`generation`);--> statement-breakpoint
CREATE TABLE `run_history` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`run` text NOT NULL,
	`from_state` text,
	`to_state` text NOT NULL,
	`event` text NOT NULL,
	`cause` text,
	`detail` text,
	`term` integer NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `run_history_run` ON `run_history` (`run`,`seq`);--> statement-breakpoint
CREATE TABLE `runs` (
	`name` text PRIMARY KEY NOT NULL,
	`state` text NOT NULL,
	`context` text NOT NULL,
	`policy` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
