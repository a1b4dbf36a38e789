import * as v from "valibot";
import { bytesSchema, counterSchema, finiteIn, intIn, timeMsSchema } from "../net/bounds.ts";
import { manifestDigestSchema, sha256Schema } from "../sync/model.ts";

/** What a node tells the cluster about itself: the scheduler places work by this. */
export const gpuSchema = v.object({
  name: v.pipe(v.string(), v.maxLength(128)),
  memoryTotalMb: finiteIn(0, 1e9),
  memoryUsedMb: finiteIn(0, 1e9),
  utilizationPct: finiteIn(0, 100),
});

export const nodeInfoSchema = v.object({
  version: v.pipe(v.string(), v.maxLength(64)),
  capabilities: v.pipe(v.array(v.pipe(v.string(), v.maxLength(32))), v.maxLength(32)),
  slots: intIn(0, 1024),
  voter: v.boolean(),
  nat: v.boolean(),
  cpu: v.object({ count: intIn(0, 1 << 20), load1: finiteIn(0, 1e9) }),
  memory: v.object({ totalBytes: bytesSchema, freeBytes: bytesSchema }),
  disk: v.object({ totalBytes: bytesSchema, freeBytes: bytesSchema }),
  gpus: v.pipe(v.array(gpuSchema), v.maxLength(16)),
  sampledAt: timeMsSchema,
  /** Drained by an operator, and why: it claims no work (its slots count for nothing) until undrained. */
  draining: v.optional(v.pipe(v.string(), v.maxLength(200))),
  /** Job slots taken by running work (the rest are free for claims). */
  busySlots: v.optional(intIn(0, 1024)),
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
  /** Behind NAT: the members whose relays reach it, nearest first (peers send it requests through them). */
  relays: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(64))), v.maxLength(4))),
  /** The leader as this node last knew it (voters know; non-voters learn it from this gossip). */
  leader: v.optional(v.nullable(v.object({ id: v.pipe(v.string(), v.maxLength(64)), term: counterSchema }))),
});

export type NodeInfo = v.InferOutput<typeof nodeInfoSchema>;
export type GpuInfo = v.InferOutput<typeof gpuSchema>;
