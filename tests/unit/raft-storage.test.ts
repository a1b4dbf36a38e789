import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "../../src/consensus/messages.ts";
import { SqliteStorage } from "../../src/consensus/sqlite-storage.ts";
import {
  type HardState,
  MemoryStorage,
  type RaftStorage,
  type SnapshotMeta,
  type Voter,
} from "../../src/consensus/storage.ts";
import { type Db, openDb } from "../../src/db/client.ts";
import { seededRandom } from "../sim/rng.ts";

/**
 * A contract test: MemoryStorage (the model) and SqliteStorage (the node's, and the simulator's) must behave alike under
 * any sequence of calls that Raft itself makes. SqliteStorage buffers its writes; "persist" makes them
 * durable the way the runtime does, and "reopen" reads the database back through a fresh SqliteStorage.
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

/** What the runtime does after each batch (runtime.ts `drain`): write only if dirty, then mark persisted. */
function persist(db: Db, s: SqliteStorage): void {
  if (!s.dirty) return;
  db.transaction((tx) => s.writeTo(tx as never));
  s.persisted();
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
function randomOp(rng: Rng, s: RaftStorage): Op {
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

function apply(s: RaftStorage, op: Op): void {
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

/** Every observable of `actual` against `expected` (the reference); `rng` only picks the entries() ranges. */
function compare(expected: RaftStorage, actual: RaftStorage, rng: Rng): void {
  const same = (what: string, want: unknown, got: unknown) => {
    if (!Bun.deepEquals(want, got, true)) {
      throw new Mismatch(`${what}\n  memory: ${JSON.stringify(want)}\n  sqlite: ${JSON.stringify(got)}`);
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

/** The reference's own consistency: the log is exactly snapshot.index+1..lastIndex, and termAt agrees with it. */
function checkShape(s: RaftStorage): void {
  const snap = s.snapshot();
  const log = s.entries(0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  if (log.length !== s.lastIndex() - snap.index) {
    throw new Mismatch(`memory: ${log.length} entries between snapshot ${snap.index} and lastIndex ${s.lastIndex()}`);
  }
  log.forEach((e, i) => {
    if (e.index !== snap.index + 1 + i || s.termAt(e.index) !== e.term) {
      throw new Mismatch(`memory: entry ${JSON.stringify(e)} at position ${i} after snapshot ${snap.index}`);
    }
  });
}

/** Once persisted, raft_log holds exactly the live log: nothing at or below the snapshot, nothing past the end. */
function checkTable(db: Db, expected: RaftStorage): void {
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
  const mem = new MemoryStorage();
  let sql = new SqliteStorage(db);
  const ops: Op[] = [];
  const step = (op: Op) => {
    ops.push(op);
    apply(mem, op);
    apply(sql, op);
    if (op.kind === "persist") {
      persist(db, sql);
      if (sql.dirty) throw new Mismatch("sqlite: still dirty after persisted()");
      checkTable(db, mem);
    }
    if (op.kind === "reopen") sql = new SqliteStorage(db);
    checkShape(mem);
    compare(mem, sql, checkRng);
  };
  try {
    compare(mem, sql, checkRng);
    for (let n = 0; n < OPS_PER_SEED; n++) {
      step(randomOp(rng, mem));
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

describe("RaftStorage contract: SqliteStorage behaves like MemoryStorage", () => {
  test(`random Raft-shaped call sequences (${SEEDS} seeds × ${OPS_PER_SEED} ops)`, () => {
    const only = process.env.RAFT_STORAGE_SEED;
    const seeds = only ? [Number(only)] : Array.from({ length: SEEDS }, (_, i) => i + 1);
    const failures = seeds.map(runSeed).filter((f) => f !== undefined);
    const shortest = failures.sort((a, b) => a.ops.length - b.ops.length)[0];
    if (shortest) throw new Error(report(shortest, failures.length, seeds.length));
  });
});

// ---------------------------------------------------------------------------------------------------------
// Hand-written cases, each against memory, buffered SQLite, and SQLite persisted and reopened at every sync()
// ---------------------------------------------------------------------------------------------------------

interface Harness {
  readonly s: RaftStorage;
  /** Makes buffered writes durable and reads them back, where that means anything. */
  sync(): void;
}

const harnesses: [string, () => Harness][] = [
  ["MemoryStorage", () => ({ s: new MemoryStorage(), sync() {} })],
  ["SqliteStorage (buffered)", () => ({ s: new SqliteStorage(freshDb()), sync() {} })],
  [
    "SqliteStorage (persisted and reopened)",
    () => {
      const db = freshDb();
      let s = new SqliteStorage(db);
      return {
        get s() {
          return s;
        },
        sync() {
          persist(db, s);
          s = new SqliteStorage(db);
        },
      };
    },
  ],
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

describe("SqliteStorage: what counts as durable", () => {
  test("buffered entries are not durable until the runtime's write; a truncation not yet written lowers it", () => {
    const db = freshDb();
    const s = new SqliteStorage(db);
    s.append(run(1, 5, 1));
    expect(s.lastIndex()).toBe(5);
    expect(s.durableIndex()).toBe(0);
    persist(db, s);
    expect(s.durableIndex()).toBe(5);
    s.truncateFrom(4);
    s.append(run(4, 6, 2));
    expect(s.durableIndex()).toBe(3);
    persist(db, s);
    expect(s.durableIndex()).toBe(6);
    expect(new SqliteStorage(db).durableIndex()).toBe(6);
  });

  test("entries just written are read back as written, also after a truncation replaced them", () => {
    const db = freshDb();
    const s = new SqliteStorage(db);
    s.append(run(1, 4, 1));
    persist(db, s);
    s.truncateFrom(3);
    s.append(run(3, 4, 2));
    persist(db, s);
    expect(s.entries(1, 5, 10).map((e) => e.term)).toEqual([1, 1, 2, 2]);
    expect(new SqliteStorage(db).entries(1, 5, 10)).toEqual(s.entries(1, 5, 10));
  });
});
