import * as v from "valibot";
import { durationSchema } from "../config/duration.ts";
import { nodeIdSchema } from "../config/schema.ts";
import { jobContextSchema, jobStateSchema } from "../machines/job-lifecycle.ts";
import { wireNumberSchema } from "../net/bounds.ts";
import { FREE_FORM_DEPTH, freeForm, freeFormCheck } from "../net/free-form.ts";

/** The largest resource a requirement may name: beyond any machine, and far from where float arithmetic breaks. */
export const MAX_GPU_MEMORY_GB = 10_000;
export const MAX_DISK_GB = 1_000_000;
export const MAX_MEMORY_GB = 100_000;

const gigabytes = (max: number) => v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(max)), 0);

export const requirementsSchema = v.strictObject({
  capabilities: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(32))), v.maxLength(16)), []),
  gpu: v.optional(v.boolean(), false),
  gpuMemoryGb: gigabytes(MAX_GPU_MEMORY_GB),
  diskGb: gigabytes(MAX_DISK_GB),
  /** Free memory the claiming node must have (the type's template may ask for more). */
  memoryGb: gigabytes(MAX_MEMORY_GB),
  /** Run on this node only, until `until` (ms since the epoch); then anywhere. */
  node: v.optional(
    v.strictObject({
      id: nodeIdSchema,
      until: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(0))),
    }),
  ),
  excludeNodes: v.optional(v.pipe(v.array(nodeIdSchema), v.maxLength(64)), []),
  /** Until then (ms since the epoch) only a node with a GPU takes it; then any node (a training prefers a GPU). */
  preferGpuUntil: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(0))),
});

/**
 * Requirements as entries already in the log carry them: every voter applies an entry the same way,
 * whichever version wrote it, so the bounds above hold at submission only.
 */
export const loggedRequirementsSchema = v.object({
  ...requirementsSchema.entries,
  gpuMemoryGb: v.optional(wireNumberSchema, 0),
  diskGb: v.optional(wireNumberSchema, 0),
  memoryGb: v.optional(wireNumberSchema, 0),
  node: v.optional(v.object({ id: v.string(), until: v.optional(wireNumberSchema) })),
});

/** A job's parameters: free-form, but small and shallow enough for every replica to encode and apply. */
export const CONFIG_LIMITS = { maxDepth: FREE_FORM_DEPTH, maxBytes: 64 * 1024 };

/** What a job reports as its result (the last line it prints, as JSON). */
export const jobResultSchema = freeForm({ maxDepth: FREE_FORM_DEPTH, maxBytes: 256 * 1024 });

const itemIdSchema = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9._:-]{1,128}$/, "an id of 1-128 letters, digits, '.', '_', ':' or '-'"),
);

/** Longer than any job should hold one attempt, and far below where time arithmetic loses precision. */
export const MAX_TIMEOUT_MS = 30 * 24 * 3_600_000;

export const workItemInputSchema = v.strictObject({
  /**
   * The client's id for the item, chosen once and sent again on every retry: the same id with the same
   * content adds the item once (the answer says `existing`); with other content it is refused (409).
   * Without one the server makes one, and a retry after a lost answer may add a second item.
   */
  id: v.optional(itemIdSchema),
  type: v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a work type name")),
  priority: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(100)), 50),
  config: v.optional(v.pipe(v.record(v.string(), v.unknown()), freeFormCheck(CONFIG_LIMITS)), {}),
  requirements: v.optional(requirementsSchema, {}),
  dependsOn: v.optional(v.pipe(v.array(itemIdSchema), v.maxLength(64)), []),
  maxAttempts: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(20)), 3),
  timeout: v.optional(v.pipe(durationSchema, v.maxValue(MAX_TIMEOUT_MS, "a duration of at most 30 days"))),
});

export const workBatchSchema = v.strictObject({
  items: v.pipe(v.array(workItemInputSchema), v.minLength(1), v.maxLength(1000)),
});

export type WorkItemInput = v.InferOutput<typeof workItemInputSchema>;
export type Requirements = v.InferOutput<typeof loggedRequirementsSchema>;

/** An item as a replicated add carries it: the submission with its defaults filled in. */
export const normalizedItemSchema = v.object({
  id: v.string(),
  type: v.string(),
  priority: wireNumberSchema,
  config: v.record(v.string(), v.unknown()),
  requirements: loggedRequirementsSchema,
  dependsOn: v.array(v.string()),
  maxAttempts: wireNumberSchema,
  timeoutMs: wireNumberSchema,
});
export type NormalizedItem = v.InferOutput<typeof normalizedItemSchema>;

/** A work item as the replicated state holds it (and GET /work answers it): its attempts live in its context. */
export const workItemSchema = v.object({
  ...v.omit(normalizedItemSchema, ["maxAttempts"]).entries,
  state: jobStateSchema,
  context: jobContextSchema,
  createdAt: wireNumberSchema,
  updatedAt: wireNumberSchema,
  seq: wireNumberSchema,
});
export type WorkItem = v.InferOutput<typeof workItemSchema>;

/** What a node offers when it asks for work: its types, free slots and free resources. */
export const offerSchema = v.strictObject({
  node: nodeIdSchema,
  types: v.pipe(v.array(v.string()), v.maxLength(64)),
  capabilities: v.pipe(v.array(v.string()), v.maxLength(64)),
  freeSlots: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1024)),
  gpus: v.pipe(v.number(), v.integer(), v.minValue(0)),
  freeGpuMemoryGb: v.pipe(v.number(), v.minValue(0)),
  freeDiskGb: v.pipe(v.number(), v.minValue(0)),
  /** Absent from workers older than item memory requirements: they are not held to them. */
  freeMemoryGb: v.optional(v.pipe(v.number(), v.minValue(0))),
  /** Slots each type takes on this node (from its job templates). */
  slotsPerType: v.record(v.string(), v.pipe(v.number(), v.integer(), v.minValue(1))),
});

export type Offer = v.InferOutput<typeof offerSchema>;
