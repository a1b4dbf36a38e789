import type { Entry } from "./messages.ts";
import type { HardState, LogWrite, RaftStorage, SnapshotMeta, Voter } from "./storage.ts";

/**
 * The log as the Raft core sees it: what its storage holds durably, with the changes made since on top (etcd's
 * unstable log). The core changes only this; `pendingWrite` says what to make durable, and `persisted` is
 * called once that write is on disk. A failed write leaves the changes here, to be written with the next.
 */
export class RaftLog {
  private hard: HardState;
  private snap: SnapshotMeta;
  private metaDirty = false;
  /** Durable entries end here (a truncation not yet written lowers it); `pending` follows. */
  private durableLast: number;
  private pending: Entry[] = [];
  /** Durable entries to delete with the next write: from this index up, and up to this index. */
  private deleteFrom: number | null = null;
  private deleteUpTo: number | null = null;

  constructor(private readonly store: RaftStorage) {
    this.hard = store.hardState();
    this.snap = store.snapshot();
    this.durableLast = store.lastIndex();
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

  /** The last index that would survive a crash now. */
  durableIndex(): number {
    // A truncation not yet written leaves entries on disk that no longer belong to the log: none of them count.
    return this.deleteFrom === null ? this.durableLast : Math.min(this.durableLast, this.deleteFrom - 1);
  }

  termAt(index: number): number | undefined {
    if (index === this.snap.index) return this.snap.term;
    if (index < this.snap.index || index > this.lastIndex()) return index === 0 ? 0 : undefined;
    const first = this.pending[0];
    if (first && index >= first.index) return this.pending[index - first.index]?.term;
    return this.store.termAt(index);
  }

  entries(from: number, to: number, limit: number): Entry[] {
    const start = Math.max(from, this.snap.index + 1);
    const end = Math.min(to, from + limit);
    const durableEnd = Math.min(end, this.durableLast + 1);
    const out = start < durableEnd ? this.store.entries(start, durableEnd, durableEnd - start) : [];
    for (const e of this.pending) if (e.index >= start && e.index < end) out.push(e);
    return out;
  }

  /** Appends entries that follow the last index (after any truncation). */
  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index !== this.lastIndex() + 1) throw new Error(`append: index ${e.index} after ${this.lastIndex()}`);
      this.pending.push(e);
    }
  }

  /** Removes every entry with index >= `from`. */
  truncateFrom(from: number): void {
    this.pending = this.pending.filter((e) => e.index < from);
    if (from <= this.durableLast) {
      this.deleteFrom = Math.min(this.deleteFrom ?? from, from);
      this.durableLast = Math.max(from - 1, this.snap.index);
    }
  }

  /** Drops entries up to `index` (already applied and covered by the state machine); `voters` were in force there. */
  compact(index: number, voters: Voter[] | undefined): void {
    if (index <= this.snap.index) return;
    const term = this.termAt(index);
    if (term === undefined) throw new Error(`compact: no entry at ${index}`);
    this.snap = { index, term, voters };
    this.deleteUpTo = Math.max(this.deleteUpTo ?? 0, index);
    this.pending = this.pending.filter((e) => e.index > index);
    this.durableLast = Math.max(this.durableLast, index);
    this.metaDirty = true;
  }

  /** Replaces the log's start with a snapshot; keeps later entries only if they agree with it. */
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
    this.snap = { ...meta, voters };
    this.durableLast = meta.index;
    this.metaDirty = true;
  }

  /** Everything changed since the last durable write, or null when nothing did. */
  pendingWrite(): LogWrite | null {
    const dirty = this.metaDirty || this.pending.length > 0 || this.deleteFrom !== null || this.deleteUpTo !== null;
    if (!dirty) return null;
    return {
      truncateFrom: this.deleteFrom,
      compactTo: this.deleteUpTo,
      entries: [...this.pending],
      meta: this.metaDirty ? { hardState: this.hardState(), snapshot: this.snapshot() } : null,
      lastIndex: this.lastIndex(),
    };
  }

  /** The write `pendingWrite` handed out is durable (and the storage reflects it); nothing changed since. */
  persisted(write: LogWrite): void {
    const same =
      write.lastIndex === this.lastIndex() &&
      write.entries.length === this.pending.length &&
      write.truncateFrom === this.deleteFrom &&
      write.compactTo === this.deleteUpTo;
    if (!same) {
      throw new Error("raft log: persisted a write that is not the pending one");
    }
    this.durableLast = this.lastIndex();
    this.pending = [];
    this.deleteFrom = null;
    this.deleteUpTo = null;
    this.metaDirty = false;
  }
}
