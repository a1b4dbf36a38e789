import { and, asc, gte, lt } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { readMeta, writeMeta } from "../db/peers.ts";
import { raftLog } from "../db/schema.ts";
import type { Entry } from "./messages.ts";
import type { HardState, RaftStorage } from "./storage.ts";

const HARD_STATE_KEY = "raft.hard_state";

/**
 * The Raft log and hard state in SQLite. Writes are buffered and made durable together by the runtime
 * (`writeTo` inside its transaction, then `persisted`) before any message leaves the node (etcd's
 * "Ready" order): one transaction per batch, and no reply ever gets ahead of the state it depends on.
 */
export class SqliteStorage implements RaftStorage {
  private hard: HardState;
  private hardDirty = false;
  /** Durable entries end here; `pending` follows. */
  private durableLast: number;
  private pending: Entry[] = [];
  private truncatedFrom: number | null = null;
  private readonly recentTerms = new Map<number, number>();

  constructor(private readonly db: Db) {
    const stored = readMeta(db, HARD_STATE_KEY);
    this.hard = stored ? (JSON.parse(stored) as HardState) : { term: 0, votedFor: null };
    const last = db.$client.query("SELECT MAX(idx) AS last FROM raft_log").get() as { last: number | null };
    this.durableLast = last.last ?? 0;
  }

  hardState(): HardState {
    return { ...this.hard };
  }

  setHardState(state: HardState): void {
    this.hard = { ...state };
    this.hardDirty = true;
  }

  lastIndex(): number {
    return this.pending.at(-1)?.index ?? this.durableLast;
  }

  termAt(index: number): number | undefined {
    if (index === 0) return 0;
    if (index > this.lastIndex()) return undefined;
    const first = this.pending[0];
    if (first && index >= first.index) return this.pending[index - first.index]?.term;
    const cached = this.recentTerms.get(index);
    if (cached !== undefined) return cached;
    const row = this.db.$client.query("SELECT term FROM raft_log WHERE idx = ?").get(index) as { term: number } | null;
    return row?.term;
  }

  entries(from: number, to: number, limit: number): Entry[] {
    const end = Math.min(to, from + limit);
    const out: Entry[] = [];
    if (from <= this.durableLast) {
      const rows = this.db
        .select()
        .from(raftLog)
        .where(and(gte(raftLog.index, from), lt(raftLog.index, Math.min(end, this.durableLast + 1))))
        .orderBy(asc(raftLog.index))
        .all();
      for (const r of rows) out.push({ index: r.index, term: r.term, command: r.command as Entry["command"] });
    }
    for (const e of this.pending) if (e.index >= from && e.index < end) out.push(e);
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
      this.truncatedFrom = Math.min(this.truncatedFrom ?? from, from);
      this.durableLast = from - 1;
      for (const k of this.recentTerms.keys()) if (k >= from) this.recentTerms.delete(k);
    }
  }

  /** Writes every buffered change through `tx`; call `persisted()` once that transaction has committed. */
  writeTo(tx: Db): void {
    if (this.truncatedFrom !== null) tx.delete(raftLog).where(gte(raftLog.index, this.truncatedFrom)).run();
    for (let i = 0; i < this.pending.length; i += 500)
      tx.insert(raftLog)
        .values(this.pending.slice(i, i + 500))
        .run();
    if (this.hardDirty) writeMeta(tx, HARD_STATE_KEY, JSON.stringify(this.hard));
  }

  get dirty(): boolean {
    return this.hardDirty || this.pending.length > 0 || this.truncatedFrom !== null;
  }

  persisted(): void {
    for (const e of this.pending) this.recentTerms.set(e.index, e.term);
    while (this.recentTerms.size > 4096) this.recentTerms.delete(this.recentTerms.keys().next().value as number);
    this.durableLast = this.lastIndex();
    this.pending = [];
    this.truncatedFrom = null;
    this.hardDirty = false;
  }
}
