import { describe, expect, test } from "bun:test";
import { Position } from "../../src/demo/game.ts";
import { chooseMove, netEvaluator, rolloutEvaluator, Search } from "../../src/demo/mcts.ts";
import { Network } from "../../src/demo/net.ts";
import { Rng } from "../../src/demo/random.ts";

const untrained = netEvaluator(Network.create(5));

function bestMove(notation: string, kind: "net" | "rollout", sims: number): number {
  const rng = new Rng(9);
  const evaluator = kind === "net" ? untrained : rolloutEvaluator(rng);
  const search = new Search(
    evaluator,
    Position.fromNotation(notation),
    {
      simulations: sims,
      selection: kind === "net" ? "puct" : "uct",
    },
    rng,
  );
  return chooseMove(search.run(), 0, rng);
}

describe("search", () => {
  // "112233": X has columns 1-3 on the bottom row and wins at column 4 (index 3).
  // "11223": O to move must block column 4.
  for (const kind of ["net", "rollout"] as const) {
    test(`${kind}: finds a one-move win`, () => {
      expect(bestMove("112233", kind, 200)).toBe(3);
      expect(bestMove("1776655", kind, 200)).toBe(3); // the second player's win, mirrored
    });
    test(`${kind}: blocks a one-move loss`, () => {
      expect(bestMove("11223", kind, 400)).toBe(3);
      expect(bestMove("77665", kind, 400)).toBe(3);
    });
  }

  test("the same seed gives the same visits with root noise, and the tree is reused after a move", () => {
    const visits = (seed: number): number[] => {
      const rng = new Rng(seed);
      const search = new Search(untrained, Position.start(), { simulations: 100, noiseFraction: 0.25 }, rng);
      const first = search.run();
      const move = chooseMove(first, 1, rng);
      search.advance(move);
      const reused = search.run();
      // The kept subtree already held the visits of the chosen move, less the one that expanded it.
      expect(reused.reduce((a, b) => a + b, 0)).toBe(100 + (first[move] as number) - 1);
      return [...first, ...reused];
    };
    expect(visits(1)).toEqual(visits(1));
    expect(visits(1)).not.toEqual(visits(2));
  });
});
