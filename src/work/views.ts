import * as v from "valibot";
import { jobStateSchema } from "../machines/job-lifecycle.ts";
import { wireNumberSchema } from "../net/bounds.ts";
import { workItemSchema } from "./model.ts";

/**
 * The work queue's answers on the wire (GET /work, /work/:id, POST /work, ...): the route table declares
 * them, the handlers must return something of these shapes, and the typed client checks them.
 */

/** Each known node and why it does not take a pending item, plus its unfinished dependencies. */
export const whyPendingSchema = v.object({
  summary: v.string(),
  dependencies: v.array(v.string()),
  nodes: v.array(v.object({ node: v.string(), fits: v.boolean(), reasons: v.array(v.string()) })),
});

export const workItemViewSchema = v.object({ ...workItemSchema.entries, whyPending: v.nullable(whyPendingSchema) });

export const submittedSchema = v.object({
  added: v.array(v.string()),
  existing: v.array(v.string()),
  queued: wireNumberSchema,
});

export const workAddedSchema = v.object({
  id: v.string(),
  existing: v.boolean(),
  item: workItemViewSchema,
  queued: wireNumberSchema,
});

const countsSchema = v.record(v.string(), wireNumberSchema);

export const workStatusSchema = v.object({
  byState: countsSchema,
  byType: v.record(v.string(), countsSchema),
  backpressure: v.object({
    queued: wireNumberSchema,
    soft: wireNumberSchema,
    hard: wireNumberSchema,
    /** "ok", "high" past the soft limit, "refusing" past the hard one. */
    level: v.string(),
  }),
  /** Read from a node that is not the leader: possibly behind. */
  stale: v.boolean(),
});

export const workHistoryRowSchema = v.object({
  seq: wireNumberSchema,
  itemId: v.string(),
  from: v.nullable(v.string()),
  to: v.string(),
  event: v.string(),
  cause: v.nullable(v.string()),
  node: v.nullable(v.string()),
  term: wireNumberSchema,
  at: wireNumberSchema,
});

/** A lease's new state after a report or a cancel (`duplicate`: the same report was applied before). */
export const reportAnswerSchema = v.object({ state: jobStateSchema, duplicate: v.boolean() });

/** One job running on this node. */
export const runningJobSchema = v.object({
  id: v.string(),
  type: v.string(),
  attempt: wireNumberSchema,
  leaseId: v.string(),
  pid: v.nullable(wireNumberSchema),
  slots: wireNumberSchema,
});

export type RunningJob = v.InferOutput<typeof runningJobSchema>;
export type WorkItemView = v.InferOutput<typeof workItemViewSchema>;
