import { describe, expect, test } from "bun:test";
import { electionWindowChange } from "../../src/consensus/hints.ts";
import { NotLeaderError, OutcomeUnknownError } from "../../src/consensus/runtime.ts";
import { chaos } from "./raft-chaos.ts";
import { RaftSim } from "./raft-sim.ts";

/** Seeds per cluster size (3 and 5 voters). */
const SEEDS = Number(process.env.RAFT_SEEDS ?? 1000);
const ONLY = process.env.RAFT_SEED ? Number(process.env.RAFT_SEED) : undefined;

function replay(seed: number, voters: number): string {
  return `replay: RAFT_SEED=${seed} RAFT_VOTERS=${voters} bun test tests/sim/raft.test.ts (SIM_LOG=1 prints the runtimes' logs)`;
}

describe("Raft under a seeded simulator", () => {
  for (const voters of process.env.RAFT_VOTERS ? [Number(process.env.RAFT_VOTERS)] : [3, 5]) {
    test(`${voters} voters: safety invariants hold and progress resumes, ${ONLY ?? SEEDS} seeds`, async () => {
      const seeds = ONLY !== undefined ? [ONLY] : Array.from({ length: SEEDS }, (_, i) => i + 1);
      for (const seed of seeds) {
        try {
          await chaos(seed, voters);
        } catch (e) {
          throw new Error(`${(e as Error).message}\n${replay(seed, voters)}`);
        }
      }
    }, 600_000);
  }

  test("a 3-voter cluster elects one leader and fails over after it crashes", () => {
    const sim = new RaftSim({ seed: 7, voters: 3 });
    sim.run(3_000);
    const first = sim.leader();
    expect(first).toBeDefined();
    sim.crash(first?.id as string);
    const crashedAt = sim.now;
    while (sim.leader() === undefined || sim.leader()?.id === first?.id) sim.run(10);
    expect(sim.now - crashedAt).toBeLessThan(sim.timing.electionMaxMs * 2);
    const why = sim.traces.filter((t) => t.to === "leader").at(-1);
    expect(why?.cause).toContain("votes from");
  });

  test("a leader cut off from the majority stops holding its lease before another is elected", async () => {
    const sim = new RaftSim({ seed: 11, voters: 5 });
    sim.run(3_000);
    const old = sim.leader();
    if (!old) throw new Error("no leader");
    const others = sim.voters.filter((v) => v.id !== old.id).map((v) => v.id);
    sim.partition([old.id], others);
    while (sim.leader()?.id === old.id || sim.leader() === undefined) sim.run(10);
    expect(old.raft.holdsLease()).toBe(false);
    // A leader without its lease refuses writes, so no client is told "committed" by a deposed leader.
    let outcome = "pending";
    old.runtime.propose({ name: "kv.set", payload: { key: "x", value: 1 } }).then(
      () => {
        outcome = "committed";
      },
      (e: Error) => {
        outcome = e.message;
      },
    );
    await Promise.resolve();
    expect(outcome).toContain("lease");
    sim.run(2_000);
    expect(old.raft.currentRole).not.toBe("leader");
    const stepDown = sim.traces.find((t) => t.node === old.id && t.from === "leader");
    expect(stepDown?.event).toBe("lease-lost");
  });

  test("a proposal still in flight when its leader stops is told so, not left waiting", async () => {
    const sim = new RaftSim({ seed: 3, voters: 3 });
    sim.run(2_000);
    const leader = sim.leader();
    if (!leader) throw new Error("no leader");
    sim.partition(
      [leader.id],
      sim.voters.filter((v) => v !== leader).map((v) => v.id),
    );
    const outcome = leader.runtime.propose({ name: "kv.set", payload: { key: "x", value: 1 } }).then(
      () => "committed",
      (e: Error) => e,
    );
    sim.run(1);
    leader.runtime.stop();
    const error = await outcome;
    expect(error).toBeInstanceOf(OutcomeUnknownError);
    expect((error as Error).message).toContain("node stopped");
  });

  test("a proposal appended by a leader deposed before it applied is of unknown outcome; a follower refuses outright", async () => {
    const sim = new RaftSim({ seed: 3, voters: 3 });
    sim.run(2_000);
    const leader = sim.leader();
    if (!leader) throw new Error("no leader");
    const follower = sim.voters.find((v) => v !== leader) as (typeof sim.voters)[number];
    await expect(follower.runtime.propose({ name: "kv.set", payload: { key: "x", value: 0 } })).rejects.toBeInstanceOf(
      NotLeaderError,
    );
    sim.partition(
      [leader.id],
      sim.voters.filter((v) => v !== leader).map((v) => v.id),
    );
    const outcome = leader.runtime.propose({ name: "kv.set", payload: { key: "x", value: 1 } }).catch((e: Error) => e);
    sim.run(5_000);
    expect(leader.raft.currentRole).not.toBe("leader");
    const error = await outcome;
    expect(error).toBeInstanceOf(OutcomeUnknownError);
    expect(error).not.toBeInstanceOf(NotLeaderError);
  });

  test("a node returning from a partition does not depose a healthy leader (pre-vote)", () => {
    const sim = new RaftSim({ seed: 5, voters: 3 });
    sim.run(3_000);
    const leader = sim.leader();
    if (!leader) throw new Error("no leader");
    const loner = sim.voters.find((v) => v.id !== leader.id)?.id as string;
    const term = leader.raft.currentTerm;
    sim.partition(
      [loner],
      sim.voters.filter((v) => v.id !== loner).map((v) => v.id),
    );
    sim.run(5_000);
    sim.heal();
    sim.run(3_000);
    expect(sim.leader()?.id).toBe(leader.id);
    expect(leader.raft.currentTerm).toBe(term);
  });

  test("a voter that missed compacted entries is caught up by a snapshot", () => {
    const sim = new RaftSim({ seed: 21, voters: 3 });
    sim.run(2_000);
    const lagging = sim.voters.find((v) => v.raft.currentRole !== "leader") as (typeof sim.voters)[number];
    sim.crash(lagging.id);
    for (let i = 0; i < 120; i++) {
      sim.propose();
      sim.run(20);
    }
    expect(sim.leader()?.raft.snapshotIndex).toBeGreaterThan(lagging.applied);
    sim.restart(lagging.id);
    const deadline = sim.now + 3_000;
    while (lagging.applied < sim.committed.size && sim.now < deadline) sim.run(20);
    expect(lagging.applied).toBe(sim.committed.size);
    expect(lagging.raft.snapshotIndex).toBeGreaterThan(0);
  });

  test("a voter is replaced without downtime: add one, remove another", () => {
    const sim = new RaftSim({ seed: 31, voters: 4 });
    const v4 = sim.voter("v4");
    sim.run(2_000);
    const leader = sim.leader();
    if (!leader) throw new Error("no leader");
    const settle = () => {
      for (let i = 0; i < 50; i++) {
        sim.propose();
        sim.run(20);
      }
    };
    settle();
    expect(leader.raft.config.map((v) => v.id).sort()).toEqual(["v1", "v2", "v3", "v4"]);
    void leader.raft.changeVoters({ remove: "v4" });
    settle();
    expect(leader.raft.config.map((v) => v.id)).not.toContain("v4");
    const outgoing = ["v1", "v2", "v3"].find((id) => id !== leader.id) as string;
    void leader.raft.changeVoters({ add: { id: "v4", address: "sim" } });
    settle();
    void leader.raft.changeVoters({ remove: outgoing });
    settle();
    expect(leader.raft.config.map((v) => v.id).sort()).toEqual(
      ["v1", "v2", "v3", "v4"].filter((id) => id !== outgoing),
    );
    sim.crash(outgoing);
    const before = sim.committed.size;
    settle();
    sim.run(sim.timing.heartbeatMs * 3);
    expect(sim.committed.size).toBeGreaterThan(before);
    expect(v4.applied).toBe(sim.committed.size);
  });

  test("a wider election window (long round trips) makes followers wait longer before campaigning", () => {
    const sim = new RaftSim({ seed: 13, voters: 3 });
    sim.run(2_000);
    // Round trips up to 200 ms between the voters: the node's decision widens the window to ten of them.
    for (const v of sim.voters) {
      const change = electionWindowChange(sim.timing, [150, 200], v.raft.electionWindowMs);
      if (change) v.raft.setElectionWindow(change.minMs, change.maxMs, change.cause);
    }
    sim.run(5_000);
    const first = sim.leader();
    if (!first) throw new Error("no leader");
    sim.crash(first.id);
    const crashedAt = sim.now;
    while (sim.leader() === undefined || sim.leader()?.id === first.id) sim.run(10);
    expect(sim.now - crashedAt).toBeGreaterThanOrEqual(2_000 * (1 - sim.timing.clockDrift));
  });

  test("the same seed gives the same run", () => {
    const run = () => {
      const sim = new RaftSim({ seed: 99, voters: 5 });
      sim.lossRate = 0.1;
      for (let i = 0; i < 40; i++) {
        sim.propose();
        sim.run(100);
      }
      return JSON.stringify(sim.traces) + JSON.stringify([...sim.committed]);
    };
    expect(run()).toBe(run());
  });
});
