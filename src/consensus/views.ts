import * as v from "valibot";
import { counterSchema, finiteIn, intIn, timeMsSchema } from "../net/bounds.ts";

/** The consensus layer's answers to operators on the wire: the election view, writes and reads of the register. */

/** A lease or an election timeout: a day is far past any timing profile's. */
const durationMs = finiteIn(0, 86_400_000);
/** Voters a cluster may configure (far above any real one). */
const MAX_VOTERS = 1_024;

const leaderRefSchema = v.nullable(v.object({ id: v.string(), address: v.nullable(v.string()) }));

export const electionViewSchema = v.union([
  /** A node that is not a voter knows only the leader, from gossip. */
  v.object({ role: v.literal("non-voter"), term: counterSchema, leader: leaderRefSchema }),
  v.object({
    term: counterSchema,
    role: v.picklist(["follower", "pre-candidate", "candidate", "leader"]),
    leader: leaderRefSchema,
    leaseExpiresAt: v.nullable(timeMsSchema),
    leaseRemainingMs: durationMs,
    quorum: intIn(0, MAX_VOTERS),
    electionTimeoutMinMs: durationMs,
    commitIndex: counterSchema,
    lastIndex: counterSchema,
    snapshotIndex: counterSchema,
    voters: v.array(
      v.object({ id: v.string(), address: v.nullable(v.string()), matchIndex: v.nullable(counterSchema) }),
    ),
    lastElectionCause: v.nullable(v.string()),
  }),
]);

/** Where a committed entry is in the log. */
export const logPositionSchema = v.object({ index: counterSchema, term: counterSchema });

export const votersChangedSchema = v.object({
  ...logPositionSchema.entries,
  voters: v.array(v.object({ id: v.string(), address: v.string() })),
});

export const kvValueSchema = v.object({
  key: v.string(),
  value: v.unknown(),
  index: counterSchema,
  term: counterSchema,
  /** Read from local state without the leader's confirmation (consistency=local). */
  stale: v.boolean(),
});

export type ElectionView = v.InferOutput<typeof electionViewSchema>;
