import * as v from "valibot";
import { wireNumberSchema } from "../net/bounds.ts";
import { nodeInfoSchema } from "./node-info.ts";

/** GET /status's wire schemas, shared by the route table, the client and the node that serves them. */

const roleSchema = v.picklist(["follower", "pre-candidate", "candidate", "leader", "non-voter"]);
/** A voter's Raft role, or "non-voter" for a node that only works. */
export type NodeRole = v.InferOutput<typeof roleSchema>;

export const peerStatusSchema = v.object({
  id: v.string(),
  address: v.string(),
  state: v.picklist(["alive", "suspect", "dead", "left"]),
  incarnation: wireNumberSchema,
  lastSeenMs: wireNumberSchema,
  stateSinceMs: wireNumberSchema,
  rttMs: v.nullable(wireNumberSchema),
  /** How this node reaches it: "direct", or "via <relay>" for a node behind NAT (its first live relay). */
  reach: v.string(),
  resources: v.nullable(nodeInfoSchema),
});

/** Signature failures with one peer, in one direction: what an operator needs to see a wrong secret or id. */
export const authFailureSchema = v.object({
  /** The node id the request claimed (inbound) or was sent to (outbound). */
  peer: v.string(),
  address: v.nullable(v.string()),
  reason: v.string(),
  count: wireNumberSchema,
  firstAt: wireNumberSchema,
  lastAt: wireNumberSchema,
});

/** GET /status: this node, the leader it knows, every peer as gossip tells. */
export const nodeStatusSchema = v.object({
  node: v.object({
    id: v.string(),
    cluster: v.string(),
    role: roleSchema,
    version: v.string(),
    address: v.string(),
    incarnation: wireNumberSchema,
    uptimeMs: wireNumberSchema,
    resources: v.nullable(nodeInfoSchema),
    /** Behind NAT: the relays this node keeps, with how long each took to connect and its open lanes. */
    relays: v.optional(
      v.array(
        v.object({
          id: v.string(),
          address: v.string(),
          openMs: v.nullable(wireNumberSchema),
          lanes: v.array(v.picklist(["control", "bulk"])),
        }),
      ),
    ),
    /** As a relay: the nodes behind NAT connected to it now, and what it has carried for them since it started. */
    relaying: v.optional(
      v.object({
        nodes: v.array(v.string()),
        requests: wireNumberSchema,
        failed: wireNumberSchema,
        bytesToNat: wireNumberSchema,
        bytesFromNat: wireNumberSchema,
        /** Requests sent down a lane whose answer has not come back. */
        queueDepth: wireNumberSchema,
      }),
    ),
  }),
  leader: v.nullable(v.object({ id: v.string(), term: wireNumberSchema })),
  peers: v.array(peerStatusSchema),
  /** Peers whose signed requests fail, recently: theirs to us (inbound) and ours to them (outbound). */
  signatureFailures: v.object({ inbound: v.array(authFailureSchema), outbound: v.array(authFailureSchema) }),
});

export type AuthFailure = v.InferOutput<typeof authFailureSchema>;
export type PeerStatus = v.InferOutput<typeof peerStatusSchema>;
export type NodeStatus = v.InferOutput<typeof nodeStatusSchema>;
