import * as v from "valibot";
import { durationSchema, nodeIdSchema } from "../config/schema.ts";
import type { JobContext, JobState } from "../machines/job-lifecycle.ts";

export const requirementsSchema = v.strictObject({
  capabilities: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(32))), v.maxLength(16)), []),
  gpu: v.optional(v.boolean(), false),
  gpuMemoryGb: v.optional(v.pipe(v.number(), v.minValue(0)), 0),
  diskGb: v.optional(v.pipe(v.number(), v.minValue(0)), 0),
  /** Run on this node only, until `until` (ms since the epoch); then anywhere. */
  node: v.optional(v.strictObject({ id: nodeIdSchema, until: v.optional(v.number()) })),
  excludeNodes: v.optional(v.pipe(v.array(nodeIdSchema), v.maxLength(64)), []),
});

export const workItemInputSchema = v.strictObject({
  /** Optional client-chosen id: submitting the same id twice adds the item once. */
  id: v.optional(
    v.pipe(v.string(), v.regex(/^[A-Za-z0-9._:-]{1,128}$/, "an id of 1-128 letters, digits, '.', '_', ':' or '-'")),
  ),
  type: v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a work type name")),
  priority: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(100)), 50),
  config: v.optional(v.record(v.string(), v.unknown()), {}),
  requirements: v.optional(requirementsSchema, {}),
  dependsOn: v.optional(v.pipe(v.array(v.string()), v.maxLength(64)), []),
  maxAttempts: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(20)), 3),
  timeout: v.optional(durationSchema),
});

export const workBatchSchema = v.strictObject({
  items: v.pipe(v.array(workItemInputSchema), v.minLength(1), v.maxLength(1000)),
});

export type WorkItemInput = v.InferOutput<typeof workItemInputSchema>;
export type Requirements = v.InferOutput<typeof requirementsSchema>;

/** A work item as the replicated state holds it. */
export interface WorkItem {
  id: string;
  type: string;
  priority: number;
  config: Record<string, unknown>;
  requirements: Requirements;
  dependsOn: string[];
  timeoutMs: number;
  state: JobState;
  context: JobContext;
  createdAt: number;
  updatedAt: number;
  seq: number;
}

/** What a node offers when it asks for work: its types, free slots and free resources. */
export const offerSchema = v.strictObject({
  node: nodeIdSchema,
  types: v.pipe(v.array(v.string()), v.maxLength(64)),
  capabilities: v.pipe(v.array(v.string()), v.maxLength(64)),
  freeSlots: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1024)),
  gpus: v.pipe(v.number(), v.integer(), v.minValue(0)),
  freeGpuMemoryGb: v.pipe(v.number(), v.minValue(0)),
  freeDiskGb: v.pipe(v.number(), v.minValue(0)),
  /** Slots each type takes on this node (from its job templates). */
  slotsPerType: v.record(v.string(), v.pipe(v.number(), v.integer(), v.minValue(1))),
});

export type Offer = v.InferOutput<typeof offerSchema>;
