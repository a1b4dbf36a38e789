import { and, asc, gte, lt, lte } from "drizzle-orm";
import * as v from "valibot";
import { DataDirError, type Db } from "../db/client.ts";
import { readMeta, writeMeta } from "../db/peers.ts";
import { raftLog } from "../db/schema.ts";
import { counterSchema, isCounter, MAX_COUNTER } from "../net/bounds.ts";
import type { Entry } from "./messages.ts";
import type { HardState, RaftStorage, SnapshotMeta, Voter } from "./storage.ts";

const HARD_STATE_KEY = "raft.hard_state";
const SNAPSHOT_KEY = "raft.snapshot";
const RECENT_ENTRIES = 1_024;

/**
 * The Raft log, hard state and snapshot position in SQLite. Changes are buffered and made durable by
 * the runtime (`writeTo` inside its transaction, then `persisted`) before any message that depends on
 * them leaves the node (etcd's "Ready" order): one transaction per batch, and no reply gets ahead of
 * what it depends on. `durableIndex` tells a leader, whose appends leave before its own write, how much
 * of its own log counts toward a quorum.
 */
export class SqliteStorage implements RaftStorage {
  private hard: HardState;
  private snap: SnapshotMeta;
  private metaDirty = false;
  /** Durable entries end here; `pending` follows. */
  private durableLast: number;
  private pending: Entry[] = [];
  /** Durable rows to delete at the next write: from this index up, and up to this index. */
  private deleteFrom: number | null = null;
  private deleteUpTo: number | null = null;
  private readonly recentTerms = new Map<number, number>();
  /**
   * The newest durable entries as objects: a leader sends each entry to every follower and applies it
   * moments after writing it, a follower applies what it just wrote; neither reads them back from disk.
   */
  private readonly recentEntries = new Map<number, Entry>();
  private readonly insertEntry;

  constructor(private readonly db: Db) {
    this.insertEntry = db.$client.prepare("INSERT INTO raft_log (idx, term, command) VALUES (?, ?, ?)");
    this.hard = loadHardState(readMeta(db, HARD_STATE_KEY));
    this.snap = loadSnapshotMeta(readMeta(db, SNAPSHOT_KEY));
    const log = db.$client.query("SELECT MAX(idx) AS last, MAX(term) AS term FROM raft_log").get() as LogBounds;
    checkLogBounds(log);
    this.durableLast = Math.max(log.last ?? 0, this.snap.index);
  }

  hardState(): HardState {
    return { ...this.hard };
  }

  setHardState(state: HardState): void {
    this.hard = { ...state };
    this.metaDirty = true;
  }

  snapshot(): SnapshotMeta {
    return { ...this.snap };
  }

  lastIndex(): number {
    return this.pending.at(-1)?.index ?? this.durableLast;
  }

  durableIndex(): number {
    // A truncation not yet written leaves rows on disk that no longer belong to the log: none of them count.
    return this.deleteFrom === null ? this.durableLast : Math.min(this.durableLast, this.deleteFrom - 1);
  }

  termAt(index: number): number | undefined {
    if (index === this.snap.index) return this.snap.term;
    if (index < this.snap.index || index > this.lastIndex()) return index === 0 ? 0 : undefined;
    const first = this.pending[0];
    if (first && index >= first.index) return this.pending[index - first.index]?.term;
    const cached = this.recentTerms.get(index);
    if (cached !== undefined) return cached;
    const row = this.db.$client.query("SELECT term FROM raft_log WHERE idx = ?").get(index) as { term: number } | null;
    return row?.term;
  }

  entries(from: number, to: number, limit: number): Entry[] {
    const start = Math.max(from, this.snap.index + 1);
    const end = Math.min(to, from + limit);
    const out: Entry[] = [];
    const durableEnd = Math.min(end, this.durableLast + 1);
    let next = start;
    for (let e = this.recentEntries.get(next); e && next < durableEnd; e = this.recentEntries.get(++next)) out.push(e);
    if (next < durableEnd) {
      const rows = this.db
        .select()
        .from(raftLog)
        .where(and(gte(raftLog.index, next), lt(raftLog.index, durableEnd)))
        .orderBy(asc(raftLog.index))
        .all();
      for (const r of rows) out.push({ index: r.index, term: r.term, command: r.command as Entry["command"] });
    }
    for (const e of this.pending) if (e.index >= start && e.index < end) out.push(e);
    return out;
  }

  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index !== this.lastIndex() + 1) throw new Error(`append: index ${e.index} after ${this.lastIndex()}`);
      this.pending.push(e);
    }
  }

  truncateFrom(from: number): void {
    this.pending = this.pending.filter((e) => e.index < from);
    if (from <= this.durableLast) {
      this.deleteFrom = Math.min(this.deleteFrom ?? from, from);
      this.durableLast = Math.max(from - 1, this.snap.index);
      for (const k of this.recentTerms.keys()) if (k >= from) this.recentTerms.delete(k);
      for (const k of this.recentEntries.keys()) if (k >= from) this.recentEntries.delete(k);
    }
  }

  compact(index: number, voters: Voter[] | undefined): void {
    if (index <= this.snap.index) return;
    const term = this.termAt(index);
    if (term === undefined) throw new Error(`compact: no entry at ${index}`);
    this.snap = { index, term, voters };
    this.metaDirty = true;
    this.deleteUpTo = Math.max(this.deleteUpTo ?? 0, index);
    this.pending = this.pending.filter((e) => e.index > index);
    this.durableLast = Math.max(this.durableLast, index);
  }

  installSnapshot(meta: SnapshotMeta): void {
    // Unknown voters stay unknown (the caller falls back to the cluster file), never an empty cluster.
    const voters = meta.voters ?? this.snap.voters;
    if (this.termAt(meta.index) === meta.term) {
      if (meta.index > this.snap.index) this.compact(meta.index, voters);
      else if (voters !== this.snap.voters) {
        this.snap = { ...this.snap, voters };
        this.metaDirty = true;
      }
      return;
    }
    // The log disagrees with the snapshot: none of it survives.
    this.pending = [];
    this.deleteFrom = 0;
    this.recentTerms.clear();
    this.recentEntries.clear();
    this.snap = { ...meta, voters };
    this.metaDirty = true;
    this.durableLast = meta.index;
  }

  get dirty(): boolean {
    return this.metaDirty || this.pending.length > 0 || this.deleteFrom !== null || this.deleteUpTo !== null;
  }

  /** Writes every buffered change through `tx`; call `persisted()` once that transaction has committed. */
  writeTo(tx: Db): void {
    if (this.deleteFrom !== null) tx.delete(raftLog).where(gte(raftLog.index, this.deleteFrom)).run();
    if (this.deleteUpTo !== null) tx.delete(raftLog).where(lte(raftLog.index, this.deleteUpTo)).run();
    for (const e of this.pending) this.insertEntry.run(e.index, e.term, JSON.stringify(e.command));
    if (this.metaDirty) {
      writeMeta(tx, HARD_STATE_KEY, JSON.stringify(this.hard));
      writeMeta(tx, SNAPSHOT_KEY, JSON.stringify(this.snap));
    }
  }

  persisted(): void {
    for (const e of this.pending) this.recentTerms.set(e.index, e.term);
    for (const k of this.recentTerms.keys()) if (k <= this.snap.index) this.recentTerms.delete(k);
    while (this.recentTerms.size > 4096) this.recentTerms.delete(this.recentTerms.keys().next().value as number);
    for (const e of this.pending) this.recentEntries.set(e.index, e);
    for (const k of this.recentEntries.keys()) {
      if (k > this.snap.index && this.recentEntries.size <= RECENT_ENTRIES) break;
      this.recentEntries.delete(k);
    }
    this.durableLast = this.lastIndex();
    this.pending = [];
    this.deleteFrom = null;
    this.deleteUpTo = null;
    this.metaDirty = false;
  }
}

interface LogBounds {
  last: number | null;
  term: number | null;
}

/**
 * Raft state read back from disk is checked like a message from a peer: a term or index that is not a safe
 * counter (a corrupt file, or one written before the wire was bounded) would wedge elections, so the node
 * refuses to start and says what it found.
 */
function loadHardState(text: string | undefined): HardState {
  if (text === undefined) return { term: 0, votedFor: null };
  const parsed = v.safeParse(hardStateSchema, parseJson(text));
  if (!parsed.success) throw corrupt("hard state", text);
  return parsed.output;
}

function loadSnapshotMeta(text: string | undefined): SnapshotMeta {
  if (text === undefined) return { index: 0, term: 0 };
  const parsed = v.safeParse(snapshotMetaSchema, parseJson(text));
  if (!parsed.success) throw corrupt("snapshot position", text);
  return parsed.output;
}

function checkLogBounds(log: LogBounds): void {
  for (const [what, n] of [
    ["last log index", log.last],
    ["highest log term", log.term],
  ] as const) {
    if (n !== null && !isCounter(n)) throw corrupt(what, String(n));
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function corrupt(what: string, found: string): DataDirError {
  return new DataDirError(
    `raft ${what} on disk is not valid (terms and indexes are integers from 0 to ${MAX_COUNTER}), found ${found.slice(0, 200)}`,
  );
}

const hardStateSchema = v.object({ term: counterSchema, votedFor: v.nullable(v.string()) });
const snapshotMetaSchema = v.object({
  index: counterSchema,
  term: counterSchema,
  voters: v.optional(v.array(v.object({ id: v.string(), address: v.string() }))),
});
