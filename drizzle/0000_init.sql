CREATE TABLE `node_meta` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `peers` (
	`id` text PRIMARY KEY NOT NULL,
	`address` text NOT NULL,
	`incarnation` integer NOT NULL,
	`state` text NOT NULL,
	`state_since` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	`info` text
);
--> statement-breakpoint
CREATE TABLE `traces` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`machine` text NOT NULL,
	`instance` text NOT NULL,
	`from_state` text,
	`to_state` text NOT NULL,
	`event` text NOT NULL,
	`cause` text,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `traces_machine_instance` ON `traces` (`machine`,`instance`,`seq`);--> statement-breakpoint
CREATE INDEX `traces_at` ON `traces` (`at`);