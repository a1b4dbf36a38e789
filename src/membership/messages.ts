import * as v from "valibot";
import { addressSchema, nodeIdSchema } from "../config/schema.ts";
import { counterSchema } from "../net/bounds.ts";
import { nodeInfoSchema } from "../shared/node-info.ts";

/** Limits that keep one peer from flooding another. */
export const MAX_UPDATES_PER_MESSAGE = 64;
export const MAX_MEMBERS_PER_SYNC = 4096;

const incarnation = counterSchema;

export const updateSchema = v.variant("kind", [
  v.object({ kind: v.literal("alive"), id: nodeIdSchema, address: addressSchema, incarnation }),
  v.object({ kind: v.literal("suspect"), id: nodeIdSchema, incarnation, by: nodeIdSchema }),
  v.object({ kind: v.literal("dead"), id: nodeIdSchema, incarnation, by: nodeIdSchema }),
  v.object({ kind: v.literal("left"), id: nodeIdSchema, incarnation }),
  v.object({ kind: v.literal("info"), id: nodeIdSchema, version: incarnation, info: nodeInfoSchema }),
]);

export const memberDigestSchema = v.object({
  id: nodeIdSchema,
  address: addressSchema,
  incarnation,
  state: v.picklist(["alive", "suspect", "dead", "left"]),
  infoVersion: incarnation,
  info: v.nullable(nodeInfoSchema),
});

const updates = v.pipe(v.array(updateSchema), v.maxLength(MAX_UPDATES_PER_MESSAGE));
const seq = counterSchema;
const target = v.object({ id: nodeIdSchema, address: addressSchema });

export const swimMessageSchema = v.variant("type", [
  v.object({ type: v.literal("ping"), from: nodeIdSchema, seq, updates }),
  v.object({ type: v.literal("ack"), from: nodeIdSchema, seq, updates }),
  v.object({ type: v.literal("ping-req"), from: nodeIdSchema, seq, target, updates }),
  v.object({ type: v.literal("gossip"), from: nodeIdSchema, updates }),
  v.object({
    type: v.literal("sync"),
    from: nodeIdSchema,
    cluster: v.pipe(v.string(), v.maxLength(64)),
    reply: v.boolean(),
    members: v.pipe(v.array(memberDigestSchema), v.maxLength(MAX_MEMBERS_PER_SYNC)),
  }),
]);

export const swimEnvelopeSchema = v.object({
  messages: v.pipe(v.array(swimMessageSchema), v.minLength(1), v.maxLength(16)),
});

export type Update = v.InferOutput<typeof updateSchema>;
export type MemberDigest = v.InferOutput<typeof memberDigestSchema>;
export type SwimMessage = v.InferOutput<typeof swimMessageSchema>;
