import * as v from "valibot";
import { manifestDigestSchema, sha256Schema } from "../sync/model.ts";

/** What a node tells the cluster about itself: the scheduler places work by this. */
export const gpuSchema = v.object({
  name: v.pipe(v.string(), v.maxLength(128)),
  memoryTotalMb: v.number(),
  memoryUsedMb: v.number(),
  utilizationPct: v.number(),
});

export const nodeInfoSchema = v.object({
  version: v.pipe(v.string(), v.maxLength(64)),
  capabilities: v.pipe(v.array(v.pipe(v.string(), v.maxLength(32))), v.maxLength(32)),
  slots: v.number(),
  voter: v.boolean(),
  nat: v.boolean(),
  cpu: v.object({ count: v.number(), load1: v.number() }),
  memory: v.object({ totalBytes: v.number(), freeBytes: v.number() }),
  disk: v.object({ totalBytes: v.number(), freeBytes: v.number() }),
  gpus: v.pipe(v.array(gpuSchema), v.maxLength(16)),
  sampledAt: v.number(),
  /** Job slots taken by running work (the rest are free for claims). */
  busySlots: v.optional(v.number()),
  /** Data sync: a digest of each data category's manifest, and the files this node is fetching for a swarm. */
  sync: v.optional(
    v.object({
      digests: v.pipe(
        v.record(v.pipe(v.string(), v.maxLength(32)), manifestDigestSchema),
        v.check((d) => Object.keys(d).length <= 64, "at most 64 data categories"),
      ),
      fetching: v.pipe(v.array(sha256Schema), v.maxLength(32)),
    }),
  ),
  /** The leader as this node last knew it (voters know; non-voters learn it from this gossip). */
  leader: v.optional(v.nullable(v.object({ id: v.pipe(v.string(), v.maxLength(64)), term: v.number() }))),
});

export type NodeInfo = v.InferOutput<typeof nodeInfoSchema>;
export type GpuInfo = v.InferOutput<typeof gpuSchema>;
