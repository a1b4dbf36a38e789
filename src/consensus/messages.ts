import * as v from "valibot";
import { addressSchema, nodeIdSchema } from "../config/schema.ts";
import { counterSchema, intIn, isCounter, MAX_COUNTER, timeMsSchema } from "../net/bounds.ts";

/** Raft's wire messages. Every one carries the sender's term: the fencing token of the protocol. */
const index = counterSchema;
const term = counterSchema;
const time = timeMsSchema;

export const MAX_ENTRIES_PER_APPEND = 512;

export const voterSchema = v.object({ id: nodeIdSchema, address: addressSchema });

export const entrySchema = v.object({
  index,
  term,
  /** A registered command: name plus JSON payload; `noop` is what a new leader commits first. */
  command: v.object({ name: v.pipe(v.string(), v.maxLength(64)), payload: v.unknown() }),
});

/** What a snapshot is: whose, of which term, up to which entry, and the voters in force there. */
const snapshotMeta = {
  from: nodeIdSchema,
  term,
  index,
  lastTerm: term,
  voters: v.pipe(v.array(voterSchema), v.maxLength(64)),
  sentAt: time,
};

export const raftMessageSchema = v.variant("type", [
  v.object({ type: v.literal("pre-vote"), from: nodeIdSchema, term, lastLogIndex: index, lastLogTerm: term }),
  v.object({ type: v.literal("pre-vote-reply"), from: nodeIdSchema, term, granted: v.boolean() }),
  v.object({
    type: v.literal("vote"),
    from: nodeIdSchema,
    term,
    lastLogIndex: index,
    lastLogTerm: term,
    /** Set by a leadership transfer: voters need not wait out the old leader's lease. */
    transfer: v.boolean(),
  }),
  v.object({ type: v.literal("vote-reply"), from: nodeIdSchema, term, granted: v.boolean() }),
  v.object({
    type: v.literal("append"),
    from: nodeIdSchema,
    term,
    prevLogIndex: index,
    prevLogTerm: term,
    entries: v.pipe(v.array(entrySchema), v.maxLength(MAX_ENTRIES_PER_APPEND)),
    leaderCommit: index,
    /** The leader's clock when it sent this; echoed back, it dates the follower's acknowledgement. */
    sentAt: time,
  }),
  v.object({
    type: v.literal("append-reply"),
    from: nodeIdSchema,
    term,
    success: v.boolean(),
    matchIndex: index,
    /** On failure: where the leader should retry from. */
    hintIndex: index,
    sentAt: time,
  }),
  v.object({ type: v.literal("timeout-now"), from: nodeIdSchema, term }),
  /** A whole snapshot has arrived (its data travels in chunks beside the core; see the runtime). */
  v.object({ type: v.literal("snapshot"), ...snapshotMeta }),
  v.object({ type: v.literal("snapshot-reply"), from: nodeIdSchema, term, index, sentAt: time }),
]);

export const raftEnvelopeSchema = v.object({
  messages: v.pipe(v.array(raftMessageSchema), v.minLength(1), v.maxLength(16)),
});

export type Entry = v.InferOutput<typeof entrySchema>;
export type RaftMessage = v.InferOutput<typeof raftMessageSchema>;

/**
 * Why the Raft core must not act on a message, or null. The wire schema bounds each number on its own;
 * this holds for messages made in-process too, and checks what the fields say together: an append's
 * entries follow its prevLogIndex one by one, in terms no later than the sender's, so no index or term
 * that is not a safe counter reaches the log.
 */
export function unsafeCounters(m: RaftMessage): string | null {
  for (const [field, n] of Object.entries(m)) {
    if (typeof n === "number" && field !== "sentAt" && !isCounter(n)) return `${field} ${n} is ${NOT_A_COUNTER}`;
  }
  if (m.type !== "append") return null;
  for (const [i, e] of m.entries.entries()) {
    if (e.index !== m.prevLogIndex + i + 1)
      return `entries[${i}].index ${e.index} does not follow ${m.prevLogIndex + i}`;
    if (!isCounter(e.term) || e.term > m.term)
      return `entries[${i}].term ${e.term} is not a term from 0 to the sender's ${m.term}`;
  }
  return null;
}

const NOT_A_COUNTER = `not an integer from 0 to ${MAX_COUNTER}`;

export const SNAPSHOT_CHUNK_CHARS = 1 << 20;
export const MAX_SNAPSHOT_CHARS = 512 * (1 << 20);

/** One piece of a snapshot on its way to a follower; the last piece completes `total`. */
export const snapshotChunkSchema = v.object({
  ...snapshotMeta,
  offset: intIn(0, MAX_SNAPSHOT_CHARS),
  total: intIn(0, MAX_SNAPSHOT_CHARS),
  chunk: v.pipe(v.string(), v.maxLength(SNAPSHOT_CHUNK_CHARS)),
});

export type SnapshotChunk = v.InferOutput<typeof snapshotChunkSchema>;
