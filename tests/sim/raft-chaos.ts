import { type RuntimeBugs, SNAPSHOT_CHUNK_TIMEOUT_MS } from "../../src/consensus/runtime.ts";
import { RaftSim } from "./raft-sim.ts";
import { shuffled } from "./rng.ts";

/** Faults no correct runtime survives, planted to show the invariants catch them. */
export interface Planted {
  bugs?: RuntimeBugs;
  /** Disks whose fsync lies until a crash. */
  lyingDisks?: boolean;
}

/**
 * One seeded run: random faults for a while (crashes, some of them in the middle of a write, restarts,
 * partitions both ways and one way, loss, duplication, reordering, failing disk writes), with clients writing
 * throughout; then the faults stop and the cluster must elect a leader and commit again, and every member's
 * state machine must end the same. The invariants are checked after every event.
 */
export async function chaos(seed: number, voters: number, planted: Planted = {}): Promise<void> {
  const sim = new RaftSim({ seed, voters, bugs: planted.bugs });
  const ids = sim.voters.map((v) => v.id);
  const maxDown = Math.floor((voters - 1) / 2);
  const pick = () => ids[Math.floor(sim.random() * ids.length)] as string;
  const faultUntil = 8_000;
  while (sim.now < faultUntil) {
    const roll = sim.random();
    if (roll < 0.15) {
      const down = sim.voters.filter((v) => !v.up).length;
      const target = pick();
      if (sim.voter(target).up && down < maxDown + (sim.random() < 0.2 ? 1 : 0)) {
        if (sim.random() < 0.3) sim.crashDuringNextWrite(target);
        else sim.crash(target);
      }
    } else if (roll < 0.3) {
      const crashed = sim.voters.filter((v) => !v.up);
      const back = crashed[Math.floor(sim.random() * crashed.length)];
      if (back) sim.restart(back.id);
    } else if (roll < 0.45) {
      // A seeded shuffle: sorting with a random comparator draws as often as the engine's sort compares,
      // which changes once it is compiled, so a seed would not replay alone as it ran among a thousand.
      const order = shuffled(ids, sim.random);
      const cut = 1 + Math.floor(sim.random() * (ids.length - 1));
      sim.partition(order.slice(0, cut), order.slice(cut), sim.random() < 0.3);
    } else if (roll < 0.6) {
      sim.heal();
      for (const v of sim.voters) v.disk.failRate = 0;
    } else if (roll < 0.66) {
      sim.changeVoters();
    } else if (roll < 0.72) {
      sim.lossRate = sim.random() * 0.3;
      sim.duplicateRate = sim.random() * 0.1;
      sim.maxDelayMs = 1 + sim.random() * 30;
    } else if (roll < 0.78) {
      sim.voter(pick()).disk.failRate = sim.random() * 0.3;
    } else if (roll < 0.84 && planted.lyingDisks) {
      sim.voter(pick()).disk.lie();
    }
    for (let i = 0; i < 4; i++) {
      sim.propose();
      sim.run(25 + sim.random() * 100);
    }
    await sim.settle();
  }
  sim.heal();
  sim.maxDelayMs = 5;
  for (const v of sim.voters) {
    v.disk.failRate = 0;
    v.disk.tearNextWrite = false;
  }
  sim.run(1);
  for (const v of sim.voters) if (!v.up) sim.restart(v.id);
  const deadline = sim.now + 10_000;
  const before = sim.committed.size;
  while (sim.committed.size === before) {
    if (sim.now > deadline) throw sim.fail("no commit within 10 s after the faults stopped");
    sim.propose();
    sim.run(50);
  }
  // Followers learn the newest commit with a later heartbeat, or a snapshot if they fell behind the log (after
  // a transfer whose piece was lost times out).
  const catchUpBy = sim.now + SNAPSHOT_CHUNK_TIMEOUT_MS + 3_000;
  const behind = () => sim.voters.filter((v) => sim.members().includes(v.id) && v.applied !== sim.committed.size);
  while (behind().length > 0 && sim.now < catchUpBy) sim.run(50);
  if (behind().length > 0)
    throw sim.fail(
      `${behind()
        .map((v) => v.id)
        .join(",")} did not catch up after the faults stopped`,
    );
  await sim.settle();
  for (const [index] of sim.acknowledged) {
    if (!sim.committed.has(index)) throw sim.fail(`acknowledged index ${index} not applied`);
  }
  const members = sim.voters.filter((v) => sim.members().includes(v.id));
  const first = members[0];
  for (const v of members) {
    if (first && sim.kvRows(v) !== sim.kvRows(first)) throw sim.fail(`${v.id}'s kv table differs from ${first.id}'s`);
  }
}
