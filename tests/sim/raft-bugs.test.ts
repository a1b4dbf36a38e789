import { describe, expect, test } from "bun:test";
import { chaos, type Planted } from "./raft-chaos.ts";

/** How many seeds a planted fault may take to show; each is caught well within this. */
const WITHIN = 200;

/** The first seed whose run fails with `planted`, and why. */
async function firstCaught(planted: Planted, voters: number): Promise<{ seed: number; why: string } | null> {
  for (let seed = 1; seed <= WITHIN; seed++) {
    try {
      await chaos(seed, voters, planted);
    } catch (e) {
      return { seed, why: (e as Error).message };
    }
  }
  return null;
}

/**
 * The simulator's invariants have teeth: each ordering bug planted in the real runtime, and a disk whose
 * fsync lies, is caught by some seed of the same chaos the correct runtime passes.
 */
describe("planted faults in the consensus runtime are caught by the simulator", () => {
  const cases: Array<[string, Planted, RegExp]> = [
    [
      "a voter acknowledging before its fsync",
      { bugs: { ackBeforeFsync: true } },
      /before (that entry|its vote) was durable/,
    ],
    ["applying entries before they are committed", { bugs: { applyBeforeCommit: true } }, /disagree|replaced|differs/],
    [
      "answering held replies after their drain failed",
      { bugs: { answerHeldAfterFailedDrain: true } },
      /before (that entry|its vote) was durable/,
    ],
    // A voter that lost entries it acknowledged may also never catch up: its leader never resends below the match.
    [
      "an fsync that lies until a crash",
      { lyingDisks: true },
      /two leaders|disagree|replaced|differs|not applied|did not catch up/,
    ],
  ];
  for (const [name, planted, why] of cases) {
    test(`${name}`, async () => {
      const caught = await firstCaught(planted, 3);
      expect(caught?.why).toMatch(why);
    }, 300_000);
  }
});
