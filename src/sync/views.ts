import * as v from "valibot";
import { wireNumberSchema } from "../net/bounds.ts";
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
  starting: wireNumberSchema,
  heldOff: v.array(v.object({ key: v.string(), until: wireNumberSchema, reason: v.string() })),
  recent: v.array(syncSessionStatusSchema),
  limits: v.object({
    maxTransfers: wireNumberSchema,
    maxUploads: wireNumberSchema,
    downloadRate: wireNumberSchema,
    uploadRate: wireNumberSchema,
    diskMaxPercent: wireNumberSchema,
    scanIntervalMs: wireNumberSchema,
  }),
  uploads: v.object({ inUse: wireNumberSchema, limit: wireNumberSchema }),
});

export type SyncStatusView = v.InferOutput<typeof syncStatusSchema>;
