import { and, asc, gte, lt, lte } from "drizzle-orm";
import * as v from "valibot";
import { DataDirError, type Db } from "../db/client.ts";
import { readMeta, writeMeta } from "../db/peers.ts";
import { raftLog } from "../db/schema.ts";
import { counterSchema, isCounter, MAX_COUNTER } from "../net/bounds.ts";
import type { Entry } from "./messages.ts";
import type { HardState, LogWrite, RaftStorage, SnapshotMeta } from "./storage.ts";

const HARD_STATE_KEY = "raft.hard_state";
const SNAPSHOT_KEY = "raft.snapshot";
const RECENT_ENTRIES = 1_024;

/**
 * The Raft log, hard state and snapshot position in SQLite, as they are on disk. The runtime writes the core's
 * `LogWrite` inside its transaction (`writeTo`) and calls `written` once that transaction has committed,
 * before any message that depends on it leaves the node (etcd's "Ready" order).
 */
export class SqliteStorage implements RaftStorage {
  private hard: HardState;
  private snap: SnapshotMeta;
  private durableLast: number;
  private readonly recentTerms = new Map<number, number>();
  /**
   * The newest entries as objects: a leader sends each entry to every follower and applies it moments after
   * writing it, a follower applies what it just wrote; neither reads them back from disk.
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

  snapshot(): SnapshotMeta {
    return { ...this.snap };
  }

  lastIndex(): number {
    return this.durableLast;
  }

  termAt(index: number): number | undefined {
    if (index === this.snap.index) return this.snap.term;
    if (index < this.snap.index || index > this.durableLast) return index === 0 ? 0 : undefined;
    const cached = this.recentTerms.get(index);
    if (cached !== undefined) return cached;
    const row = this.db.$client.query("SELECT term FROM raft_log WHERE idx = ?").get(index) as { term: number } | null;
    return row?.term;
  }

  entries(from: number, to: number, limit: number): Entry[] {
    const start = Math.max(from, this.snap.index + 1);
    const end = Math.min(to, from + limit, this.durableLast + 1);
    const out: Entry[] = [];
    let next = start;
    for (let e = this.recentEntries.get(next); e && next < end; e = this.recentEntries.get(++next)) out.push(e);
    if (next < end) {
      const rows = this.db
        .select()
        .from(raftLog)
        .where(and(gte(raftLog.index, next), lt(raftLog.index, end)))
        .orderBy(asc(raftLog.index))
        .all();
      for (const r of rows) out.push({ index: r.index, term: r.term, command: r.command as Entry["command"] });
    }
    return out;
  }

  /** Writes one batch through `tx`; call `written` once that transaction has committed. */
  writeTo(tx: Db, w: LogWrite): void {
    if (w.truncateFrom !== null) tx.delete(raftLog).where(gte(raftLog.index, w.truncateFrom)).run();
    if (w.compactTo !== null) tx.delete(raftLog).where(lte(raftLog.index, w.compactTo)).run();
    for (const e of w.entries) this.insertEntry.run(e.index, e.term, JSON.stringify(e.command));
    if (w.meta) {
      writeMeta(tx, HARD_STATE_KEY, JSON.stringify(w.meta.hardState));
      writeMeta(tx, SNAPSHOT_KEY, JSON.stringify(w.meta.snapshot));
    }
  }

  written(w: LogWrite): void {
    const { truncateFrom } = w;
    if (truncateFrom !== null) {
      for (const k of this.recentTerms.keys()) if (k >= truncateFrom) this.recentTerms.delete(k);
      for (const k of this.recentEntries.keys()) if (k >= truncateFrom) this.recentEntries.delete(k);
    }
    if (w.meta) {
      this.hard = { ...w.meta.hardState };
      this.snap = { ...w.meta.snapshot };
    }
    for (const e of w.entries) this.recentTerms.set(e.index, e.term);
    for (const k of this.recentTerms.keys()) if (k <= this.snap.index) this.recentTerms.delete(k);
    while (this.recentTerms.size > 4096) this.recentTerms.delete(this.recentTerms.keys().next().value as number);
    for (const e of w.entries) this.recentEntries.set(e.index, e);
    for (const k of this.recentEntries.keys()) {
      if (k > this.snap.index && this.recentEntries.size <= RECENT_ENTRIES) break;
      this.recentEntries.delete(k);
    }
    this.durableLast = w.lastIndex;
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
