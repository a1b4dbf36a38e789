import * as v from "valibot";
import { manifestDigestSchema } from "./model.ts";
import { syncSessionStatusSchema } from "./session.ts";

/** Data sync's answers to operators on the wire (GET /sync/status, /sync/sessions/:id, POST /sync/start). */

/** A data category on this node: where it lives, whether this node holds it, and its manifest's digest. */
export const categoryStatusSchema = v.object({
  name: v.string(),
  root: v.string(),
  holds: v.boolean(),
  swarm: v.boolean(),
  ...manifestDigestSchema.entries,
});

export const syncStatusSchema = v.object({
  node: v.string(),
  categories: v.array(categoryStatusSchema),
  active: v.array(syncSessionStatusSchema),
  /** Transfers planned whose path and disk checks are still under way. */
  starting: v.number(),
  heldOff: v.array(v.object({ key: v.string(), until: v.number(), reason: v.string() })),
  recent: v.array(syncSessionStatusSchema),
  limits: v.object({
    maxTransfers: v.number(),
    maxUploads: v.number(),
    downloadRate: v.number(),
    uploadRate: v.number(),
    diskMaxPercent: v.number(),
    scanIntervalMs: v.number(),
  }),
  uploads: v.object({ inUse: v.number(), limit: v.number() }),
});

export type SyncStatusView = v.InferOutput<typeof syncStatusSchema>;
