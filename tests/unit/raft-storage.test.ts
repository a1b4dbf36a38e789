import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "../../src/consensus/messages.ts";
import { RaftLog } from "../../src/consensus/raft-log.ts";
import { SqliteStorage } from "../../src/consensus/sqlite-storage.ts";
import { type HardState, MemoryStorage, type SnapshotMeta, type Voter } from "../../src/consensus/storage.ts";
import { type Db, openDb } from "../../src/db/client.ts";
import { seededRandom } from "../sim/rng.ts";

/**
 * A contract test: the core's log (`RaftLog`, which buffers its changes until the runtime writes them) over
 * either store, MemoryStorage or SqliteStorage (the node's, and the simulator's), must behave like a plain log
 * that is durable at once (`ModelLog`, below) under any sequence of calls that Raft itself makes. "persist"
 * writes the pending changes the way the runtime does, and "reopen" reads the store back into a fresh log.
 *
 * A failure names the shortest failing seed and its operations; rerun just it with RAFT_STORAGE_SEED=<seed>.
 */

const SEEDS = 300;
const OPS_PER_SEED = 60;
const P_PERSIST = 0.4;
const P_REOPEN = 0.1;
/** Random entries() ranges compared after each step, besides the whole log. */
const RANGES_PER_CHECK = 3;

let root: string;
const opened: Db[] = [];
beforeAll(() => {
  // Hundreds of small databases: on tmpfs where there is one, creating them costs a third as much.
  const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
  root = mkdtempSync(join(base, "p2p-raft-storage-"));
});
afterAll(() => {
  for (const db of opened) db.$client.close(); // closing twice is harmless
  rmSync(root, { recursive: true, force: true });
});

function freshDb(): Db {
  const db = openDb(join(root, String(opened.length)));
  // Surviving power loss is SQLite's business, not this contract's: skip the fsyncs to stay fast.
  db.$client.exec("PRAGMA synchronous = OFF");
  opened.push(db);
  return db;
}

/** The log's interface as Raft uses it. */
type Log = Pick<
  RaftLog,
  | "hardState"
  | "setHardState"
  | "snapshot"
  | "lastIndex"
  | "termAt"
  | "entries"
  | "append"
  | "truncateFrom"
  | "compact"
  | "installSnapshot"
>;

/** The model: a log that is durable as soon as it changes, with nothing buffered, kept as a map by index. */
class ModelLog implements Log {
  private state: HardState = { term: 0, votedFor: null };
  private snap: SnapshotMeta = { index: 0, term: 0 };
  private readonly log = new Map<number, Entry>();

  hardState(): HardState {
    return { ...this.state };
  }

  setHardState(state: HardState): void {
    this.state = { ...state };
  }

  lastIndex(): number {
    let last = this.snap.index;
    while (this.log.has(last + 1)) last++;
    return last;
  }

  snapshot(): SnapshotMeta {
    return { ...this.snap };
  }

  termAt(index: number): number | undefined {
    if (index === 0) return 0;
    return index === this.snap.index ? this.snap.term : this.log.get(index)?.term;
  }

  entries(from: number, to: number, limit: number): Entry[] {
    const out: Entry[] = [];
    // `limit` counts indexes from `from`, as the stores do: a range from below the snapshot yields fewer.
    for (let i = from; i < Math.min(to, from + limit) && i <= this.lastIndex(); i++) {
      const e = this.log.get(i);
      if (e) out.push(e);
    }
    return out;
  }

  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index !== this.lastIndex() + 1) throw new Error(`append: index ${e.index} after ${this.lastIndex()}`);
      this.log.set(e.index, e);
    }
  }

  truncateFrom(from: number): void {
    for (const i of this.log.keys()) if (i >= from) this.log.delete(i);
  }

  compact(index: number, voters: Voter[] | undefined): void {
    if (index <= this.snap.index) return;
    const term = this.termAt(index);
    if (term === undefined) throw new Error(`compact: no entry at ${index}`);
    this.snap = { index, term, voters };
    for (const i of this.log.keys()) if (i <= index) this.log.delete(i);
  }

  installSnapshot(meta: SnapshotMeta): void {
    if (this.termAt(meta.index) !== meta.term) this.log.clear();
    for (const i of this.log.keys()) if (i <= meta.index) this.log.delete(i);
    this.snap = { ...meta, voters: meta.voters ?? this.snap.voters };
  }
}

/** The core's log on one store, written the way the runtime writes it (runtime.ts `write`). */
interface Stored {
  log: RaftLog;
  /** Writes the pending changes, if any, and tells the log. */
  persist(): void;
  /** A fresh log over what the store holds (buffered changes are lost, as in a crash). */
  reopen(): void;
}

function onMemory(): Stored {
  const store = new MemoryStorage();
  return {
    log: new RaftLog(store),
    persist() {
      const w = this.log.pendingWrite();
      if (!w) return;
      store.write(w);
      this.log.persisted(w);
    },
    reopen() {
      this.log = new RaftLog(store);
    },
  };
}

function onSqlite(db: Db): Stored {
  let store = new SqliteStorage(db);
  return {
    log: new RaftLog(store),
    persist() {
      const w = this.log.pendingWrite();
      if (!w) return;
      db.transaction((tx) => store.writeTo(tx as never, w));
      store.written(w);
      this.log.persisted(w);
    },
    reopen() {
      store = new SqliteStorage(db);
      this.log = new RaftLog(store);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Random operations
// ---------------------------------------------------------------------------------------------------------

type Op =
  | { kind: "append"; entries: Entry[] }
  | { kind: "truncateFrom"; from: number }
  | { kind: "compact"; index: number; voters: Voter[] }
  | { kind: "installSnapshot"; meta: SnapshotMeta; note: "match" | "conflict" | "beyond" }
  | { kind: "setHardState"; state: HardState }
  | { kind: "persist" }
  | { kind: "reopen" };

const describeVoters = (vs: readonly Voter[] | undefined) => (vs ? `[${vs.map((v) => v.id).join(",")}]` : "none");

function describeOp(op: Op): string {
  switch (op.kind) {
    case "append":
      return `append(${op.entries.map((e) => `${e.index}@t${e.term}`).join(", ")})`;
    case "truncateFrom":
      return `truncateFrom(${op.from})`;
    case "compact":
      return `compact(${op.index}, ${describeVoters(op.voters)})`;
    case "installSnapshot": {
      const { index, term, voters } = op.meta;
      return `installSnapshot({index: ${index}, term: ${term}, voters: ${describeVoters(voters)}}) [${op.note}]`;
    }
    case "setHardState":
      return `setHardState(${JSON.stringify(op.state)})`;
    case "persist":
    case "reopen":
      return op.kind;
  }
}

type Rng = () => number;
/** An integer in [lo, hi]. */
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)] as T;

const NODES = ["node-a", "node-b", "node-c", "node-d", "node-e"];

/** A non-empty subset of the nodes, sometimes reordered: the order is part of what must round-trip. */
function randomVoters(rng: Rng): Voter[] {
  const ids = NODES.filter(() => rng() < 0.6);
  if (ids.length === 0) ids.push(pick(rng, NODES));
  if (rng() < 0.3) ids.reverse();
  return ids.map((id) => ({ id, address: `http://${id}:${int(rng, 7000, 7009)}` }));
}

function randomPayload(rng: Rng): unknown {
  switch (int(rng, 0, 4)) {
    case 0:
      return null;
    case 1:
      return int(rng, -1000, 1000);
    case 2:
      return `v${int(rng, 0, 99)} "quoted" ünïcode`;
    case 3:
      return [int(rng, 0, 9), "x", { deep: true }];
    default:
      return { key: `k${int(rng, 0, 9)}`, value: { n: rng(), list: [1, 2, 3], flag: rng() < 0.5 } };
  }
}

/** 1..5 entries after `after`, with terms that never go below `lastTerm` nor down. */
function randomEntries(rng: Rng, after: number, lastTerm: number): Entry[] {
  const out: Entry[] = [];
  let term = rng() < 0.3 ? lastTerm + int(rng, 1, 2) : lastTerm;
  for (let i = 1, n = int(rng, 1, 5); i <= n; i++) {
    if (rng() < 0.1) term++;
    const command = rng() < 0.2 ? { name: "noop", payload: null } : { name: "kv.set", payload: randomPayload(rng) };
    out.push({ index: after + i, term, command });
  }
  return out;
}

/** One call that Raft could make, given the current state (read from the reference). */
function randomOp(rng: Rng, s: Log): Op {
  const snap = s.snapshot();
  const last = s.lastIndex();
  const lastTerm = s.termAt(last) ?? 0;
  const hasLog = last > snap.index;
  const above = () => int(rng, snap.index + 1, last);
  const r = rng();
  if (r < 0.45 || (!hasLog && r < 0.64)) return { kind: "append", entries: randomEntries(rng, last, lastTerm) };
  // Truncation and compaction only ever touch entries above the snapshot.
  if (r < 0.54) return { kind: "truncateFrom", from: above() };
  if (r < 0.64) return { kind: "compact", index: above(), voters: randomVoters(rng) };
  if (r < 0.76) {
    // Raft (answerSnapshot) always names the snapshot's voters, and only installs past its commit index.
    const voters = randomVoters(rng);
    const c = rng();
    if (hasLog && c < 0.4) {
      const index = above();
      return { kind: "installSnapshot", meta: { index, term: s.termAt(index) ?? 0, voters }, note: "match" };
    }
    if (hasLog && c < 0.7) {
      const index = above();
      const term = (s.termAt(index) ?? 0) + int(rng, 1, 2);
      return { kind: "installSnapshot", meta: { index, term, voters }, note: "conflict" };
    }
    const meta = { index: last + int(rng, 1, 6), term: lastTerm + int(rng, 0, 2), voters };
    return { kind: "installSnapshot", meta, note: "beyond" };
  }
  const hard = s.hardState();
  const state = { term: hard.term + int(rng, 0, 2), votedFor: pick(rng, [null, ...NODES]) };
  return { kind: "setHardState", state };
}

function apply(s: Log, op: Op): void {
  switch (op.kind) {
    case "append":
      s.append(op.entries);
      break;
    case "truncateFrom":
      s.truncateFrom(op.from);
      break;
    case "compact":
      s.compact(op.index, op.voters);
      break;
    case "installSnapshot":
      s.installSnapshot(op.meta);
      break;
    case "setHardState":
      s.setHardState(op.state);
      break;
    case "persist":
    case "reopen":
      break;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------------------

class Mismatch extends Error {}

/** Every observable of `actual` against `expected` (the model); `rng` only picks the entries() ranges. */
function compare(expected: Log, actual: Log, name: string, rng: Rng): void {
  const same = (what: string, want: unknown, got: unknown) => {
    if (!Bun.deepEquals(want, got, true)) {
      throw new Mismatch(`${what}\n  model: ${JSON.stringify(want)}\n  ${name}: ${JSON.stringify(got)}`);
    }
  };
  same("lastIndex()", expected.lastIndex(), actual.lastIndex());
  same("snapshot()", expected.snapshot(), actual.snapshot());
  same("hardState()", expected.hardState(), actual.hardState());
  const last = expected.lastIndex();
  for (let i = 0; i <= last + 1; i++) same(`termAt(${i})`, expected.termAt(i), actual.termAt(i));
  const ranges: [number, number, number][] = [[0, last + 2, Number.MAX_SAFE_INTEGER]];
  for (let k = 0; k < RANGES_PER_CHECK; k++) {
    const from = int(rng, 0, last + 2);
    ranges.push([from, int(rng, from - 1, last + 3), int(rng, 0, 6)]);
  }
  for (const [from, to, limit] of ranges) {
    same(`entries(${from}, ${to}, ${limit})`, expected.entries(from, to, limit), actual.entries(from, to, limit));
  }
}

/** The model's own consistency: the log is exactly snapshot.index+1..lastIndex, and termAt agrees with it. */
function checkShape(s: Log): void {
  const snap = s.snapshot();
  const log = s.entries(0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  if (log.length !== s.lastIndex() - snap.index) {
    throw new Mismatch(`model: ${log.length} entries between snapshot ${snap.index} and lastIndex ${s.lastIndex()}`);
  }
  log.forEach((e, i) => {
    if (e.index !== snap.index + 1 + i || s.termAt(e.index) !== e.term) {
      throw new Mismatch(`model: entry ${JSON.stringify(e)} at position ${i} after snapshot ${snap.index}`);
    }
  });
}

/** Once persisted, raft_log holds exactly the live log: nothing at or below the snapshot, nothing past the end. */
function checkTable(db: Db, expected: Log): void {
  const got = db.$client.query("SELECT COUNT(*) AS n, MIN(idx) AS lo, MAX(idx) AS hi FROM raft_log").get();
  const first = expected.snapshot().index + 1;
  const last = expected.lastIndex();
  const want = last < first ? { n: 0, lo: null, hi: null } : { n: last - first + 1, lo: first, hi: last };
  if (!Bun.deepEquals(want, got)) {
    throw new Mismatch(`raft_log rows after persist\n  want: ${JSON.stringify(want)}\n  have: ${JSON.stringify(got)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Random runs
// ---------------------------------------------------------------------------------------------------------

interface Failure {
  seed: number;
  message: string;
  ops: Op[];
}

function runSeed(seed: number): Failure | undefined {
  const rng = seededRandom(seed);
  // A separate stream for the checks, so that a seed's operations do not depend on them.
  const checkRng = seededRandom(seed ^ 0x5eed);
  const db = freshDb();
  const model = new ModelLog();
  const stores: Array<[string, Stored]> = [
    ["memory", onMemory()],
    ["sqlite", onSqlite(db)],
  ];
  const ops: Op[] = [];
  const compareAll = () => {
    for (const [name, stored] of stores) compare(model, stored.log, name, checkRng);
  };
  const step = (op: Op) => {
    ops.push(op);
    apply(model, op);
    for (const [name, stored] of stores) {
      apply(stored.log, op);
      if (op.kind === "persist") {
        stored.persist();
        if (stored.log.pendingWrite()) throw new Mismatch(`${name}: changes still pending after persisted()`);
      }
      if (op.kind === "reopen") stored.reopen();
    }
    if (op.kind === "persist") checkTable(db, model);
    checkShape(model);
    compareAll();
  };
  try {
    compareAll();
    for (let n = 0; n < OPS_PER_SEED; n++) {
      step(randomOp(rng, model));
      if (rng() < P_PERSIST) {
        step({ kind: "persist" });
        if (rng() < P_REOPEN) step({ kind: "reopen" });
      }
    }
    // Whatever is still buffered must survive too.
    step({ kind: "persist" });
    step({ kind: "reopen" });
    return undefined;
  } catch (err) {
    const message = err instanceof Mismatch ? err.message : `threw ${err instanceof Error ? err.stack : err}`;
    return { seed, message, ops };
  } finally {
    db.$client.close();
  }
}

function report(f: Failure, failed: number, total: number): string {
  const last = f.ops.at(-1);
  return [
    `${failed} of ${total} seeds failed; the shortest is seed ${f.seed} (rerun with RAFT_STORAGE_SEED=${f.seed})`,
    `after op ${f.ops.length}${last ? ` (${describeOp(last)})` : " (initial state)"}: ${f.message}`,
    "ops:",
    ...f.ops.map((op, i) => `  ${String(i + 1).padStart(3)}. ${describeOp(op)}`),
  ].join("\n");
}

describe("the log contract: RaftLog on either store behaves like a log that is durable at once", () => {
  test(`random Raft-shaped call sequences (${SEEDS} seeds × ${OPS_PER_SEED} ops)`, () => {
    const only = process.env.RAFT_STORAGE_SEED;
    const seeds = only ? [Number(only)] : Array.from({ length: SEEDS }, (_, i) => i + 1);
    const failures = seeds.map(runSeed).filter((f) => f !== undefined);
    const shortest = failures.sort((a, b) => a.ops.length - b.ops.length)[0];
    if (shortest) throw new Error(report(shortest, failures.length, seeds.length));
  });
});

// ---------------------------------------------------------------------------------------------------------
// Hand-written cases, each against the model, the log buffered on either store, and the log on each store
// persisted and reopened at every sync()
// ---------------------------------------------------------------------------------------------------------

interface Harness {
  readonly s: Log;
  /** Makes buffered writes durable and reads them back, where that means anything. */
  sync(): void;
}

const persistedAndReopened = (stored: Stored): Harness => ({
  get s() {
    return stored.log;
  },
  sync() {
    stored.persist();
    stored.reopen();
  },
});

const harnesses: [string, () => Harness][] = [
  ["ModelLog", () => ({ s: new ModelLog(), sync() {} })],
  ["RaftLog on MemoryStorage (buffered)", () => ({ s: onMemory().log, sync() {} })],
  ["RaftLog on SqliteStorage (buffered)", () => ({ s: onSqlite(freshDb()).log, sync() {} })],
  ["RaftLog on MemoryStorage (persisted and reopened)", () => persistedAndReopened(onMemory())],
  ["RaftLog on SqliteStorage (persisted and reopened)", () => persistedAndReopened(onSqlite(freshDb()))],
];

const entry = (index: number, term: number): Entry => ({
  index,
  term,
  command: { name: "kv.set", payload: { index } },
});
/** Entries from..to (inclusive), all in `term`. */
const run = (from: number, to: number, term: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
const indexes = (es: Entry[]) => es.map((e) => e.index);
const V1: Voter[] = [
  { id: "node-a", address: "http://node-a:7000" },
  { id: "node-b", address: "http://node-b:7000" },
  { id: "node-c", address: "http://node-c:7000" },
];
const V2: Voter[] = [
  { id: "node-c", address: "http://node-c:7001" },
  { id: "node-d", address: "http://node-d:7000" },
];

describe.each(harnesses)("%s", (_name, make) => {
  test("empty storage", () => {
    const { s } = make();
    expect(s.lastIndex()).toBe(0);
    expect(s.snapshot()).toEqual({ index: 0, term: 0 });
    expect(s.hardState()).toEqual({ term: 0, votedFor: null });
    expect(s.termAt(0)).toBe(0);
    expect(s.termAt(1)).toBeUndefined();
    expect(s.entries(0, 10, 10)).toEqual([]);
  });

  test("append, then read back terms and entry ranges", () => {
    const h = make();
    h.s.append(run(1, 3, 1));
    h.sync();
    h.s.append(run(4, 5, 2));
    expect(h.s.lastIndex()).toBe(5);
    expect([1, 2, 3, 4, 5, 6].map((i) => h.s.termAt(i))).toEqual([1, 1, 1, 2, 2, undefined]);
    expect(h.s.entries(1, 6, 100)).toEqual([...run(1, 3, 1), ...run(4, 5, 2)]);
    expect(indexes(h.s.entries(2, 6, 2))).toEqual([2, 3]);
    expect(indexes(h.s.entries(3, 5, 100))).toEqual([3, 4]);
    expect(h.s.entries(6, 10, 100)).toEqual([]);
  });

  test("hard state round-trips", () => {
    const h = make();
    h.s.setHardState({ term: 7, votedFor: "node-b" });
    h.sync();
    expect(h.s.hardState()).toEqual({ term: 7, votedFor: "node-b" });
    h.s.setHardState({ term: 8, votedFor: null });
    h.sync();
    expect(h.s.hardState()).toEqual({ term: 8, votedFor: null });
  });

  test("append with a gap, or over an existing index, throws", () => {
    const h = make();
    h.s.append(run(1, 2, 1));
    h.sync();
    expect(() => h.s.append([entry(4, 1)])).toThrow(/append/);
    expect(() => h.s.append([entry(2, 1)])).toThrow(/append/);
    expect(h.s.lastIndex()).toBe(2);
  });

  test("truncateFrom drops the suffix, which a later term may then overwrite", () => {
    const h = make();
    h.s.append(run(1, 5, 1));
    h.sync();
    h.s.truncateFrom(3);
    expect(h.s.lastIndex()).toBe(2);
    expect(h.s.termAt(3)).toBeUndefined();
    h.s.append(run(3, 4, 2));
    h.sync();
    expect(h.s.entries(1, 10, 10)).toEqual([...run(1, 2, 1), ...run(3, 4, 2)]);
  });

  test("compact: entries at or below the snapshot are gone", () => {
    const h = make();
    h.s.append(run(1, 5, 1));
    h.sync();
    h.s.compact(3, V1);
    h.sync();
    expect(h.s.snapshot()).toEqual({ index: 3, term: 1, voters: V1 });
    expect(h.s.lastIndex()).toBe(5);
    expect(h.s.entries(1, 3, 10)).toEqual([]);
    expect(h.s.entries(1, 4, 10)).toEqual([]);
    expect(indexes(h.s.entries(1, 10, 10))).toEqual([4, 5]);
    expect(h.s.termAt(2)).toBeUndefined();
    expect(h.s.termAt(3)).toBe(1);
    expect(h.s.termAt(0)).toBe(0);
  });

  test("installSnapshot that matches an entry keeps the suffix", () => {
    const h = make();
    h.s.append([...run(1, 3, 1), ...run(4, 6, 2)]);
    h.sync();
    h.s.installSnapshot({ index: 4, term: 2, voters: V1 });
    h.sync();
    expect(h.s.snapshot()).toEqual({ index: 4, term: 2, voters: V1 });
    expect(h.s.lastIndex()).toBe(6);
    expect(indexes(h.s.entries(0, 10, 10))).toEqual([5, 6]);
  });

  test("installSnapshot with a conflicting term discards the log", () => {
    const h = make();
    h.s.append(run(1, 6, 1));
    h.sync();
    h.s.installSnapshot({ index: 4, term: 3, voters: V1 });
    h.sync();
    expect(h.s.snapshot()).toEqual({ index: 4, term: 3, voters: V1 });
    expect(h.s.lastIndex()).toBe(4);
    expect(h.s.termAt(5)).toBeUndefined();
    expect(h.s.entries(0, 10, 10)).toEqual([]);
  });

  test("installSnapshot beyond the end discards the log; append continues from snapshot.index + 1", () => {
    const h = make();
    h.s.append(run(1, 3, 1));
    h.sync();
    h.s.installSnapshot({ index: 10, term: 2, voters: V1 });
    h.sync();
    expect(h.s.lastIndex()).toBe(10);
    expect(h.s.snapshot()).toEqual({ index: 10, term: 2, voters: V1 });
    expect(h.s.termAt(10)).toBe(2);
    expect(h.s.termAt(3)).toBeUndefined();
    expect(h.s.entries(0, 20, 20)).toEqual([]);
    expect(() => h.s.append([entry(4, 2)])).toThrow(/append/);
    expect(() => h.s.append([entry(12, 2)])).toThrow(/append/);
    h.s.append(run(11, 12, 2));
    h.sync();
    expect(h.s.lastIndex()).toBe(12);
    expect(h.s.entries(0, 20, 20)).toEqual(run(11, 12, 2));
  });

  test("snapshot voters: replaced by each compaction, kept by an installSnapshot that names none", () => {
    const h = make();
    h.s.append(run(1, 6, 1));
    h.s.compact(2, V1);
    h.sync();
    h.s.compact(3, V2);
    h.sync();
    expect(h.s.snapshot()).toEqual({ index: 3, term: 1, voters: V2 });
    h.s.installSnapshot({ index: 4, term: 1 });
    h.sync();
    expect(h.s.snapshot()).toEqual({ index: 4, term: 1, voters: V2 });
    h.s.installSnapshot({ index: 9, term: 2 });
    h.sync();
    expect(h.s.snapshot()).toEqual({ index: 9, term: 2, voters: V2 });
  });

  test("voters unknown to a snapshot stay unknown (never an empty cluster)", () => {
    const h = make();
    h.s.installSnapshot({ index: 5, term: 1 });
    h.sync();
    expect(h.s.snapshot().voters).toBeUndefined();
  });

  test("installSnapshot at the snapshot's own index adopts the voters it names", () => {
    const h = make();
    h.s.append(run(1, 2, 1));
    h.s.compact(1, V1);
    h.s.installSnapshot({ index: 1, term: 1, voters: V2 });
    h.sync();
    expect(h.s.snapshot()).toEqual({ index: 1, term: 1, voters: V2 });
  });
});

describe("RaftLog on SqliteStorage: what counts as durable", () => {
  test("buffered entries are not durable until the runtime's write; a truncation not yet written lowers it", () => {
    const db = freshDb();
    const stored = onSqlite(db);
    const s = stored.log;
    s.append(run(1, 5, 1));
    expect(s.lastIndex()).toBe(5);
    expect(s.durableIndex()).toBe(0);
    stored.persist();
    expect(s.durableIndex()).toBe(5);
    s.truncateFrom(4);
    s.append(run(4, 6, 2));
    expect(s.durableIndex()).toBe(3);
    expect(s.pendingWrite()).toMatchObject({ truncateFrom: 4, lastIndex: 6 });
    stored.persist();
    expect(s.durableIndex()).toBe(6);
    expect(new SqliteStorage(db).lastIndex()).toBe(6);
  });

  test("entries just written are read back as written, also after a truncation replaced them", () => {
    const db = freshDb();
    const stored = onSqlite(db);
    stored.log.append(run(1, 4, 1));
    stored.persist();
    stored.log.truncateFrom(3);
    stored.log.append(run(3, 4, 2));
    stored.persist();
    expect(stored.log.entries(1, 5, 10).map((e) => e.term)).toEqual([1, 1, 2, 2]);
    expect(new SqliteStorage(db).entries(1, 5, 10)).toEqual(stored.log.entries(1, 5, 10));
  });

  test("a write that is not the pending one is refused", () => {
    const stored = onSqlite(freshDb());
    stored.log.append(run(1, 2, 1));
    const w = stored.log.pendingWrite();
    if (!w) throw new Error("nothing pending");
    stored.log.append(run(3, 3, 1));
    expect(() => stored.log.persisted(w)).toThrow(/not the pending one/);
  });
});
