import type { Entry } from "./messages.ts";

export interface HardState {
  term: number;
  votedFor: string | null;
}

/**
 * What Raft must keep across a crash (hashicorp/raft's StableStore + LogStore). Writes are synchronous
 * and durable when they return, so a reply that depends on them is never sent ahead of them.
 */
export interface RaftStorage {
  hardState(): HardState;
  setHardState(state: HardState): void;
  lastIndex(): number;
  /** Term of the entry at `index`; 0 for index 0; undefined if absent. */
  termAt(index: number): number | undefined;
  /** Entries with from <= index < to, at most `limit`. */
  entries(from: number, to: number, limit: number): Entry[];
  /** Appends entries that follow the last index (after any truncation). */
  append(entries: readonly Entry[]): void;
  /** Removes every entry with index >= `from`. */
  truncateFrom(from: number): void;
}

/** In memory: for the simulator, where "durable" means surviving a simulated crash. */
export class MemoryStorage implements RaftStorage {
  private state: HardState = { term: 0, votedFor: null };
  private log: Entry[] = [];

  hardState(): HardState {
    return { ...this.state };
  }

  setHardState(state: HardState): void {
    this.state = { ...state };
  }

  lastIndex(): number {
    return this.log.length;
  }

  termAt(index: number): number | undefined {
    if (index === 0) return 0;
    return this.log[index - 1]?.term;
  }

  entries(from: number, to: number, limit: number): Entry[] {
    return this.log.slice(from - 1, Math.min(to - 1, from - 1 + limit));
  }

  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index !== this.log.length + 1) throw new Error(`append: index ${e.index} after ${this.log.length}`);
      this.log.push(e);
    }
  }

  truncateFrom(from: number): void {
    this.log.length = Math.min(this.log.length, from - 1);
  }
}
