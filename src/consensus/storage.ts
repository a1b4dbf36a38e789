import type { Entry } from "./messages.ts";

export interface HardState {
  term: number;
  votedFor: string | null;
}

/** A voter: its id, and where the others reach it. */
export interface Voter {
  id: string;
  address: string;
}

/** The last entry a snapshot covers (the log starts after it), and the voters in force there. */
export interface SnapshotMeta {
  index: number;
  term: number;
  voters?: Voter[];
}

/**
 * What Raft must keep across a crash (hashicorp/raft's StableStore + LogStore). Writes are synchronous
 * and durable when they return, so a reply that depends on them is never sent ahead of them.
 */
export interface RaftStorage {
  hardState(): HardState;
  setHardState(state: HardState): void;
  lastIndex(): number;
  /** The last index that would survive a crash now (writes may be buffered until the runtime persists them). */
  durableIndex(): number;
  snapshot(): SnapshotMeta;
  /** Term of the entry at `index` (the snapshot's term at its index); 0 for index 0; undefined if absent or compacted. */
  termAt(index: number): number | undefined;
  /** Entries with from <= index < to, at most `limit`. */
  entries(from: number, to: number, limit: number): Entry[];
  /** Appends entries that follow the last index (after any truncation). */
  append(entries: readonly Entry[]): void;
  /** Removes every entry with index >= `from`. */
  truncateFrom(from: number): void;
  /** Drops entries up to `index` (already applied and covered by the state machine); `voters` were in force there. */
  compact(index: number, voters: Voter[] | undefined): void;
  /** Replaces the log's start with a snapshot; keeps later entries only if they agree with it. */
  installSnapshot(meta: SnapshotMeta): void;
}

/** In memory, durable as soon as written: the model SqliteStorage is held to, and storage for tests of the core alone. */
export class MemoryStorage implements RaftStorage {
  private state: HardState = { term: 0, votedFor: null };
  private snap: SnapshotMeta = { index: 0, term: 0 };
  /** log[0] is the entry at snap.index + 1. */
  private log: Entry[] = [];

  hardState(): HardState {
    return { ...this.state };
  }

  setHardState(state: HardState): void {
    this.state = { ...state };
  }

  lastIndex(): number {
    return this.snap.index + this.log.length;
  }

  durableIndex(): number {
    return this.lastIndex();
  }

  snapshot(): SnapshotMeta {
    return { ...this.snap };
  }

  termAt(index: number): number | undefined {
    if (index === this.snap.index) return this.snap.term;
    if (index < this.snap.index) return index === 0 ? 0 : undefined;
    return this.log[index - this.snap.index - 1]?.term;
  }

  entries(from: number, to: number, limit: number): Entry[] {
    const start = Math.max(from, this.snap.index + 1) - this.snap.index - 1;
    const end = Math.min(to, from + limit) - this.snap.index - 1;
    return this.log.slice(start, Math.max(start, end));
  }

  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index !== this.lastIndex() + 1) throw new Error(`append: index ${e.index} after ${this.lastIndex()}`);
      this.log.push(e);
    }
  }

  truncateFrom(from: number): void {
    this.log.length = Math.max(0, Math.min(this.log.length, from - this.snap.index - 1));
  }

  compact(index: number, voters: Voter[] | undefined): void {
    if (index <= this.snap.index) return;
    const term = this.termAt(index);
    if (term === undefined) throw new Error(`compact: no entry at ${index}`);
    this.log = this.log.slice(index - this.snap.index);
    this.snap = { index, term, voters };
  }

  installSnapshot(meta: SnapshotMeta): void {
    const keep = this.termAt(meta.index) === meta.term ? this.log.slice(meta.index - this.snap.index) : [];
    this.snap = { ...meta, voters: meta.voters ?? this.snap.voters };
    this.log = keep;
  }
}
