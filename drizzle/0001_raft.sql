CREATE TABLE `kv` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text,
	`idx` integer NOT NULL,
	`term` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `raft_log` (
	`idx` integer PRIMARY KEY NOT NULL,
	`term` integer NOT NULL,
	`command` text NOT NULL
);
