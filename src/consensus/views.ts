import * as v from "valibot";

/** The consensus layer's answers to operators on the wire: the election view, writes and reads of the register. */

const leaderRefSchema = v.nullable(v.object({ id: v.string(), address: v.nullable(v.string()) }));

export const electionViewSchema = v.union([
  /** A node that is not a voter knows only the leader, from gossip. */
  v.object({ role: v.literal("non-voter"), term: v.number(), leader: leaderRefSchema }),
  v.object({
    term: v.number(),
    role: v.picklist(["follower", "pre-candidate", "candidate", "leader"]),
    leader: leaderRefSchema,
    leaseExpiresAt: v.nullable(v.number()),
    leaseRemainingMs: v.number(),
    quorum: v.number(),
    electionTimeoutMinMs: v.number(),
    commitIndex: v.number(),
    lastIndex: v.number(),
    snapshotIndex: v.number(),
    voters: v.array(v.object({ id: v.string(), address: v.nullable(v.string()), matchIndex: v.nullable(v.number()) })),
    lastElectionCause: v.nullable(v.string()),
  }),
]);

/** Where a committed entry is in the log. */
export const logPositionSchema = v.object({ index: v.number(), term: v.number() });

export const votersChangedSchema = v.object({
  ...logPositionSchema.entries,
  voters: v.array(v.object({ id: v.string(), address: v.string() })),
});

export const kvValueSchema = v.object({
  key: v.string(),
  value: v.unknown(),
  index: v.number(),
  term: v.number(),
  /** Read from local state without the leader's confirmation (consistency=local). */
  stale: v.boolean(),
});

export type ElectionView = v.InferOutput<typeof electionViewSchema>;
