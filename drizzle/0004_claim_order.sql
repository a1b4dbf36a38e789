DROP INDEX `work_items_state`;--> statement-breakpoint
CREATE INDEX `work_items_claim_order` ON `work_items` (`state`,"priority" DESC,`seq`);