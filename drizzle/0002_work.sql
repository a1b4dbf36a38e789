CREATE TABLE `work_history` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`item_id` text NOT NULL,
	`from_state` text,
	`to_state` text NOT NULL,
	`event` text NOT NULL,
	`cause` text,
	`node` text,
	`term` integer NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `work_history_item` ON `work_history` (`item_id`,`seq`);--> statement-breakpoint
CREATE TABLE `work_items` (
	`id` text PRIMARY KEY NOT NULL,
	`type` text NOT NULL,
	`priority` integer NOT NULL,
	`config` text NOT NULL,
	`requirements` text NOT NULL,
	`depends_on` text NOT NULL,
	`timeout_ms` integer NOT NULL,
	`state` text NOT NULL,
	`context` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`seq` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `work_items_state` ON `work_items` (`state`,`priority`,`seq`);