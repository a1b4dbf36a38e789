import { describe, expect, test } from "bun:test";
import { deriveTiming } from "../../src/config/timing.ts";
import { electionWindowChange, leaderHint } from "../../src/consensus/hints.ts";
import { seededRandom } from "../sim/rng.ts";

const member = (id: string, state: string, leader?: { id: string; term: number } | null) => ({
  id,
  address: `10.0.0.${id.slice(1)}:7000`,
  state,
  leader,
});

describe("leader hint", () => {
  test("a voter names the leader Raft knows, at Raft's address", () => {
    const hint = leaderHint({ id: "n2", term: 4 }, [member("n3", "alive", { id: "n9", term: 9 })], (id) =>
      id === "n2" ? "raft:2" : null,
    );
    expect(hint).toEqual({ id: "n2", term: 4, address: "raft:2" });
  });

  test("a non-voter takes the newest term live members gossip, at the membership view's address", () => {
    const members = [
      member("n1", "alive", { id: "n1", term: 3 }),
      member("n2", "dead", { id: "n2", term: 7 }),
      member("n3", "alive", { id: "n3", term: 5 }),
    ];
    expect(leaderHint(null, members, () => null)).toEqual({ id: "n3", term: 5, address: "10.0.0.3:7000" });
  });

  test("no hint where nobody knows a leader; no address where nobody knows where it listens", () => {
    expect(leaderHint(null, [member("n1", "alive", null)], () => null)).toBeNull();
    expect(leaderHint({ id: "n8", term: 2 }, [], () => null)).toEqual({ id: "n8", term: 2, address: null });
  });
});

describe("election window", () => {
  const timing = deriveTiming("lan");

  test("short round trips keep the profile's window: no change", () => {
    expect(electionWindowChange(timing, [1, 2], timing.electionMinMs)).toBeNull();
  });

  test("long round trips widen it to ten round trips, with the cause", () => {
    const change = electionWindowChange(timing, [40, 300], timing.electionMinMs);
    expect(change).toEqual({ minMs: 3_000, maxMs: 6_000, cause: "voter round trips up to 300 ms" });
  });

  test("round trips that shrink again restore the profile's window", () => {
    expect(electionWindowChange(timing, [2], 3_000)?.minMs).toBe(timing.electionMinMs);
  });

  test("it narrows only once the round trips call for a quarter less, so jitter does not flap it", () => {
    expect(electionWindowChange(timing, [250], 3_000)).toBeNull();
    expect(electionWindowChange(timing, [225], 3_000)?.minMs).toBe(2_250);
    // 80 ms +- 10 ms for 1,000 samples: the window follows the new highs only, never back down.
    const random = seededRandom(7);
    let current = timing.electionMinMs;
    let changes = 0;
    for (let i = 0; i < 1_000; i++) {
      const change = electionWindowChange(timing, [Math.round(70 + random() * 20)], current);
      if (change) {
        changes++;
        current = change.minMs;
      }
    }
    expect(current).toBe(900);
    expect(changes).toBeLessThanOrEqual(10);
  });
});
