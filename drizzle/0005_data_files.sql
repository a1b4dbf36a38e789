CREATE TABLE `data_files` (
	`category` text NOT NULL,
	`path` text NOT NULL,
	`size` integer NOT NULL,
	`mtime_ms` integer NOT NULL,
	`sha256` text NOT NULL,
	`pieces` text NOT NULL,
	PRIMARY KEY(`category`, `path`)
);
--> statement-breakpoint
CREATE INDEX `data_files_sha` ON `data_files` (`sha256`);