import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { raftEnvelopeSchema, snapshotChunkSchema } from "../../src/consensus/messages.ts";
import { RaftNode } from "../../src/consensus/raft.ts";
import { SqliteStorage } from "../../src/consensus/sqlite-storage.ts";
import { MemoryStorage } from "../../src/consensus/storage.ts";
import { DataDirError, openDb } from "../../src/db/client.ts";
import { loadPeers, savePeers, writeMeta } from "../../src/db/peers.ts";
import { swimEnvelopeSchema } from "../../src/membership/messages.ts";
import { MAX_COUNTER } from "../../src/net/bounds.ts";
import { nodeInfoSchema } from "../../src/shared/node-info.ts";
import { readSidecar } from "../../src/sync/fetcher.ts";
import { PIECE_BYTES, pieceMapSchema } from "../../src/sync/model.ts";

/**
 * Defect: one signed message with term 1e308 moved every voter to a term where term + 1 === term, and
 * persisted it. Every counter on the wire and on disk is now a safe integer with room for one more.
 */

const UNSAFE = [1e308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, -1, 1.5] as const;

const append = (term: number) => ({
  type: "append",
  from: "n2",
  term,
  prevLogIndex: 0,
  prevLogTerm: 0,
  entries: [],
  leaderCommit: 0,
  sentAt: 1,
});

describe("wire schemas refuse counters that are not safe", () => {
  test.each(UNSAFE)("a Raft term of %p is refused, naming the field", (term) => {
    const parsed = v.safeParse(raftEnvelopeSchema, { messages: [append(term)] });
    expect(parsed.success).toBe(false);
    expect(parsed.issues?.[0]?.path?.map((p) => p.key)).toEqual(["messages", 0, "term"]);
  });

  test("the largest counter with room for one more is accepted", () => {
    expect(v.safeParse(raftEnvelopeSchema, { messages: [append(MAX_COUNTER)] }).success).toBe(true);
  });

  test("log indexes, entry terms, snapshot offsets and times are bounded too", () => {
    const bad = [
      { ...append(1), prevLogIndex: 2 ** 53 },
      { ...append(1), entries: [{ index: 1, term: 1e308, command: { name: "noop", payload: null } }] },
      { ...append(1), sentAt: Number.MAX_VALUE },
    ];
    for (const m of bad) expect(v.safeParse(raftEnvelopeSchema, { messages: [m] }).success).toBe(false);
    const chunk = { from: "n1", term: 1, index: 1, lastTerm: 1, voters: [], sentAt: 1, total: 10, chunk: "" };
    expect(v.safeParse(snapshotChunkSchema, { ...chunk, offset: 0 }).success).toBe(true);
    expect(v.safeParse(snapshotChunkSchema, { ...chunk, offset: 1e300 }).success).toBe(false);
  });

  test("SWIM incarnations and sequence numbers", () => {
    const ping = (seq: number, incarnation: number) => ({
      messages: [{ type: "ping", from: "n2", seq, updates: [{ kind: "left", id: "n3", incarnation }] }],
    });
    expect(v.safeParse(swimEnvelopeSchema, ping(1, 1)).success).toBe(true);
    expect(v.safeParse(swimEnvelopeSchema, ping(1, 2 ** 53 + 1)).success).toBe(false);
    expect(v.safeParse(swimEnvelopeSchema, ping(1e308, 1)).success).toBe(false);
  });

  test("a peer's resources and piece maps", () => {
    const info = {
      version: "1",
      capabilities: [],
      slots: 1,
      voter: false,
      nat: false,
      cpu: { count: 2, load1: 0.5 },
      memory: { totalBytes: 1024, freeBytes: 512 },
      disk: { totalBytes: 1024, freeBytes: 512 },
      gpus: [],
      sampledAt: 1,
    };
    expect(v.safeParse(nodeInfoSchema, info).success).toBe(true);
    expect(v.safeParse(nodeInfoSchema, { ...info, memory: { totalBytes: 1e308, freeBytes: 1e308 } }).success).toBe(
      false,
    );
    expect(v.safeParse(nodeInfoSchema, { ...info, slots: 1e9 }).success).toBe(false);
    const map = { sha256: "a".repeat(64), size: 10, pieceBytes: 4, pieces: [] };
    expect(v.safeParse(pieceMapSchema, { ...map, have: [0, 1] }).success).toBe(true);
    expect(v.safeParse(pieceMapSchema, { ...map, have: [1e308] }).success).toBe(false);
  });
});

describe("the Raft core never steps to a term it cannot leave", () => {
  const timers: { at: number; fn: () => void }[] = [];
  let now = 0;
  const clock = {
    setTimeout: (fn: () => void, ms: number) => {
      const t = { at: now + ms, fn };
      timers.push(t);
      return t;
    },
    clearTimeout: (t: unknown) => {
      const i = timers.indexOf(t as (typeof timers)[number]);
      if (i >= 0) timers.splice(i, 1);
    },
  };
  const runFor = (ms: number) => {
    const end = now + ms;
    for (;;) {
      timers.sort((a, b) => a.at - b.at);
      const next = timers[0];
      if (!next || next.at > end) break;
      timers.shift();
      now = next.at;
      next.fn();
    }
    now = end;
  };
  const timing = { heartbeatMs: 50, electionMinMs: 300, electionMaxMs: 600, leaseMs: 250, appendTimeoutMs: 500 };
  const node = (storage: MemoryStorage) =>
    new RaftNode({
      id: "n1",
      voters: [{ id: "n1", address: "n1" }],
      storage,
      timing,
      appliedIndex: 0,
      now: () => now,
      random: () => 0.5,
      clock,
    });

  test("a message whose term is not a safe counter leaves the term alone", () => {
    const raft = node(new MemoryStorage());
    raft.start();
    for (const term of UNSAFE) {
      raft.receive(append(term) as Parameters<RaftNode["receive"]>[0], 0);
      expect(raft.currentTerm).toBe(0);
    }
    raft.stop();
  });

  test("such a message is refused whole and traced; no entry with an unsafe or impossible index or term is logged", () => {
    const storage = new MemoryStorage();
    const raft = node(storage);
    raft.start();
    const entry = (index: number, term: number) => ({ index, term, command: { name: "noop", payload: null } });
    const appends = [
      { ...append(1e308), entries: [entry(1, 1)] },
      { ...append(2), entries: [entry(1, 1e308)] },
      { ...append(2), entries: [entry(1, 3)] },
      { ...append(2), entries: [entry(2 ** 53 + 1, 1)] },
      { ...append(2), entries: [entry(1, 1), entry(3, 1)] },
      { ...append(2), leaderCommit: 1.5, entries: [entry(1, 1)] },
    ];
    for (const m of appends) raft.receive(m as Parameters<RaftNode["receive"]>[0], 0);
    expect(raft.currentTerm).toBe(0);
    expect(raft.lastIndex).toBe(0);
    const refusals = raft.takeEffects().filter((e) => e.type === "trace" && e.record.event === "refused-message");
    expect(refusals).toHaveLength(appends.length);
    // A well-formed append from the same sender is still taken.
    raft.receive({ ...append(2), entries: [entry(1, 1), entry(2, 2)] } as Parameters<RaftNode["receive"]>[0], 0);
    expect(raft.currentTerm).toBe(2);
    expect(raft.lastIndex).toBe(2);
    raft.stop();
  });

  /** n1, leader of n1-n3 in term 1 by n2's vote, on the test's clock. */
  function electedLeader(): RaftNode {
    const raft = new RaftNode({
      id: "n1",
      voters: ["n1", "n2", "n3"].map((id) => ({ id, address: id })),
      storage: new MemoryStorage(),
      timing,
      appliedIndex: 0,
      now: () => now,
      random: () => 0.5,
      clock,
    });
    raft.start();
    runFor(1_000);
    raft.receive({ type: "pre-vote-reply", from: "n2", term: 1, granted: true }, 0);
    raft.receive({ type: "vote-reply", from: "n2", term: 1, granted: true }, 0);
    expect(raft.currentRole).toBe("leader");
    return raft;
  }

  test("an acknowledgement dated after the leader's clock does not stretch its lease", () => {
    const raft = electedLeader();
    raft.receive(
      {
        type: "append-reply",
        from: "n2",
        term: 1,
        success: true,
        matchIndex: 0,
        hintIndex: 0,
        sentAt: 1e15,
      },
      0,
    );
    expect(raft.leaseExpiresAt()).toBeLessThanOrEqual(now + timing.leaseMs);
    runFor(timing.leaseMs + 1);
    expect(raft.holdsLease()).toBe(false);
    raft.stop();
  });

  test("an acknowledgement of entries past the leader's log does not stall the follower's replication", () => {
    const raft = electedLeader();
    const reply = { type: "append-reply", from: "n2", term: 1, success: true, hintIndex: 0, sentAt: now } as const;
    raft.receive({ ...reply, matchIndex: 1_000 }, 0);
    expect(raft.matchIndexes().n2).toBe(raft.lastIndex);
    raft.takeEffects();
    // The next appends to n2 follow from our own log, not from index 1,000 that n2 cannot match.
    runFor(timing.heartbeatMs * 2);
    const sent = raft
      .takeEffects()
      .flatMap((e) => (e.type === "send" && e.to === "n2" && e.message.type === "append" ? [e.message] : []));
    expect(sent.length).toBeGreaterThan(0);
    for (const m of sent) expect(m.prevLogIndex).toBeLessThanOrEqual(raft.lastIndex);
    raft.stop();
  });

  test("at the largest term it does not campaign past it, and says why", () => {
    const storage = new MemoryStorage();
    storage.write({
      truncateFrom: null,
      compactTo: null,
      entries: [],
      meta: { hardState: { term: MAX_COUNTER, votedFor: null }, snapshot: { index: 0, term: 0 } },
      lastIndex: 0,
    });
    const raft = node(storage);
    raft.start();
    runFor(5_000);
    expect(raft.currentTerm).toBe(MAX_COUNTER);
    expect(Number.isSafeInteger(raft.currentTerm + 1)).toBe(true);
    const causes = raft.takeEffects().flatMap((e) => (e.type === "trace" ? [e.record.cause] : []));
    expect(causes.some((c) => c?.includes("has no room for another election"))).toBe(true);
    raft.stop();
  });
});

describe("state read back from disk is checked like a message", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("a hard state term of 1e308, a log term of 2^53 + 1 or garbage refuse to load, naming what is wrong", () => {
    for (const [key, value, what] of [
      ["raft.hard_state", '{"term":1e308,"votedFor":null}', "raft hard state"],
      ["raft.hard_state", "not json", "raft hard state"],
      ["raft.snapshot", '{"index":9007199254740993,"term":1}', "raft snapshot position"],
    ] as const) {
      dir = mkdtempSync(join(tmpdir(), "p2p-bounds-"));
      const db = openDb(dir);
      writeMeta(db, key, value);
      expect(() => new SqliteStorage(db)).toThrow(DataDirError);
      expect(() => new SqliteStorage(db)).toThrow(what);
      db.$client.close();
      rmSync(dir, { recursive: true, force: true });
    }
    dir = mkdtempSync(join(tmpdir(), "p2p-bounds-"));
    const db = openDb(dir);
    db.$client.run("INSERT INTO raft_log (idx, term, command) VALUES (1, 9007199254740993, '{}')");
    expect(() => new SqliteStorage(db)).toThrow("highest log term");
    db.$client.close();
  });

  test("a partial file's sidecar with sizes or piece runs out of range reads as none, at once", async () => {
    dir = mkdtempSync(join(tmpdir(), "p2p-bounds-"));
    const path = join(dir, "x.partial.pieces.json");
    const sidecar = { sha256: "a".repeat(64), size: 4 * PIECE_BYTES, pieceBytes: PIECE_BYTES, runs: [[0, 2]] };
    writeFileSync(path, JSON.stringify(sidecar));
    expect((await readSidecar(path))?.done).toEqual([0, 1]);
    for (const bad of [
      { ...sidecar, size: 1e308 },
      { ...sidecar, pieceBytes: 2 ** 53 + 1 },
      // Before the bound, 2^52 pieces of 1 byte passed and the run was expanded piece by piece.
      { ...sidecar, size: 2 ** 52, pieceBytes: 1, runs: [[0, 2 ** 52]] },
      {
        ...sidecar,
        runs: [
          [0, 2],
          [0, 2],
        ],
      },
    ]) {
      writeFileSync(path, JSON.stringify(bad));
      expect(await readSidecar(path)).toBeNull();
    }
  });

  test("a peer row with an incarnation out of range is left out; good rows load", () => {
    dir = mkdtempSync(join(tmpdir(), "p2p-bounds-"));
    const db = openDb(dir);
    const member = (id: string, incarnation: number) => ({
      id,
      address: "127.0.0.9:1",
      state: "alive" as const,
      incarnation,
      stateSince: 1,
      lastSeenAt: 1,
      infoVersion: 0,
      info: null,
      rttMs: null,
    });
    savePeers(db, [member("good", 3), member("bad", 1e308)]);
    expect(loadPeers(db).map((m) => m.id)).toEqual(["good"]);
    db.$client.close();
  });
});
