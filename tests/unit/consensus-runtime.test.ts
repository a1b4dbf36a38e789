import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { type ConsensusRuntime, NotLeaderError, WriteFailedError } from "../../src/consensus/runtime.ts";
import { defineCommand } from "../../src/consensus/state-machine.ts";
import { type Db, openDb } from "../../src/db/client.ts";
import { startSingleVoter, waitForLease } from "./single-voter.ts";

/** Doubles each number it carries, and counts the entries that reached it. */
let applied = 0;
const double = defineCommand({
  name: "test.double",
  payload: v.object({ items: v.array(v.number()) }),
  tables: [],
  apply(_db, payload) {
    applied++;
    return payload.items.map((x) => x * 2);
  },
});

/** Fails its batch's transaction while `diskFull` is set, as a full disk would; counts the applies that held. */
let diskFull = false;
let flakyApplied = 0;
const flaky = defineCommand({
  name: "test.flaky",
  payload: v.object({}),
  tables: [],
  apply() {
    if (diskFull) throw new Error("database or disk is full");
    return ++flakyApplied;
  },
});

let dir: string;
let db: Db;
let runtime: ConsensusRuntime;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "p2p-runtime-"));
  db = openDb(dir);
  applied = 0;
  diskFull = false;
  flakyApplied = 0;
  runtime = await startSingleVoter(db, [double, flaky]);
});

afterEach(() => {
  runtime.stop();
  db.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

const proposeDoubles = async (items: number[]) => {
  const { result } = await runtime.propose({ name: "test.double", payload: { items } });
  return result as number[];
};

describe("group commit", () => {
  test("calls made in one turn share one entry, and each caller gets its own answer", async () => {
    const twice = runtime.coalesce(proposeDoubles);
    const before = runtime.raft.lastIndex;
    expect(await Promise.all([twice(1), twice(2), twice(3)])).toEqual([2, 4, 6]);
    expect(runtime.raft.lastIndex).toBe(before + 1);
    expect(applied).toBe(1);
    // A later turn is a later entry.
    expect(await twice(5)).toBe(10);
    expect(applied).toBe(2);
  });

  test("a full group goes at once; the rest make the next entry", async () => {
    const twice = runtime.coalesce(proposeDoubles, 2);
    expect(await Promise.all([twice(1), twice(2), twice(3)])).toEqual([2, 4, 6]);
    expect(applied).toBe(2);
  });

  test("when the group's proposal fails, every caller in it hears why", async () => {
    const failing = runtime.coalesce(async (_items: number[]): Promise<number[]> => {
      throw new Error("refused");
    });
    const outcomes = await Promise.allSettled([failing(1), failing(2)]);
    expect(outcomes.map((o) => (o.status === "rejected" ? (o.reason as Error).message : "fulfilled"))).toEqual([
      "refused",
      "refused",
    ]);
  });
});

describe("a drain whose transaction fails", () => {
  test("proposers hear why at once, the leader steps down, and the batch is written once when the disk recovers", async () => {
    diskFull = true;
    const failed = await runtime.propose({ name: "test.flaky", payload: {} }).catch((e: Error) => e);
    expect(failed).toBeInstanceOf(WriteFailedError);
    expect((failed as Error).message).toContain("database or disk is full");
    expect(flakyApplied).toBe(0);
    // A leader that cannot write gives leadership up at once, rather than refuse every write while holding it.
    expect(runtime.raft.currentRole).toBe("follower");
    expect(runtime.raft.leader).toBeNull();
    const again = await runtime.propose({ name: "test.double", payload: { items: [1] } }).catch((e: Error) => e);
    expect(again).toBeInstanceOf(NotLeaderError);

    diskFull = false;
    // The timers' drains write what waited; only then does this node campaign and lead again.
    await waitForLease(runtime);
    expect(flakyApplied).toBe(1);
    expect(await proposeDoubles([21])).toEqual([42]);
    expect(applied).toBe(1);
  });

  test("a voter's reply that waits on the failed write is refused, not sent", async () => {
    diskFull = true;
    await runtime.propose({ name: "test.flaky", payload: {} }).catch(() => {});
    // Any message that gets a reply: an append from a deposed leader of an older term.
    const stale = {
      type: "append" as const,
      from: "n9",
      term: 0,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [],
      leaderCommit: 0,
      sentAt: 0,
    };
    const reply = await runtime.receive([stale]).catch((e: Error) => e);
    expect(reply).toBeInstanceOf(WriteFailedError);
    diskFull = false;
    const after = await runtime.receive([stale]);
    expect(after.length).toBe(1);
    expect(flakyApplied).toBe(1);
  });
});
