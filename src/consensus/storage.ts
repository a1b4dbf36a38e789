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
 * What Raft keeps across a crash, as it is on disk now (hashicorp/raft's StableStore + LogStore, read side).
 * The core never writes it: it emits a `LogWrite` in a `persist` effect, and the runtime makes that durable.
 */
export interface RaftStorage {
  hardState(): HardState;
  snapshot(): SnapshotMeta;
  lastIndex(): number;
  /** Term of the entry at `index` (the snapshot's term at its index); 0 for index 0; undefined if absent or compacted. */
  termAt(index: number): number | undefined;
  /** Entries with from <= index < to, at most `limit`. */
  entries(from: number, to: number, limit: number): Entry[];
}

/**
 * One batch of changes to the durable log, applied in this order: entries from `truncateFrom` up removed (0:
 * all of them, when a snapshot replaced the log), entries up to `compactTo` removed, `entries` appended, the
 * hard state and snapshot position replaced. `lastIndex` is the log's last index once it is written.
 */
export interface LogWrite {
  truncateFrom: number | null;
  compactTo: number | null;
  entries: readonly Entry[];
  meta: { hardState: HardState; snapshot: SnapshotMeta } | null;
  lastIndex: number;
}

/** In memory, durable as soon as written: storage for tests of the core alone. */
export class MemoryStorage implements RaftStorage {
  private state: HardState = { term: 0, votedFor: null };
  private snap: SnapshotMeta = { index: 0, term: 0 };
  /** log[0] is the entry at snap.index + 1. */
  private log: Entry[] = [];

  hardState(): HardState {
    return { ...this.state };
  }

  snapshot(): SnapshotMeta {
    return { ...this.snap };
  }

  lastIndex(): number {
    return this.snap.index + this.log.length;
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

  write(w: LogWrite): void {
    const { truncateFrom, compactTo } = w;
    let log = this.log;
    if (truncateFrom !== null) log = log.filter((e) => e.index < truncateFrom);
    if (compactTo !== null) log = log.filter((e) => e.index > compactTo);
    log = [...log, ...w.entries];
    if (w.meta) {
      this.state = { ...w.meta.hardState };
      this.snap = { ...w.meta.snapshot };
    }
    this.log = log.filter((e) => e.index > this.snap.index);
    this.log.forEach((e, i) => {
      if (e.index !== this.snap.index + 1 + i) throw new Error(`write: entry ${e.index} out of place`);
    });
    if (this.lastIndex() !== w.lastIndex) throw new Error(`write: log ends at ${this.lastIndex()}, not ${w.lastIndex}`);
  }
}
