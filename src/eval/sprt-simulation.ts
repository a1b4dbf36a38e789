/**
 * Plays the gate's SPRT many times against simulated game pairs of a known true Elo difference, to see what a
 * policy's bounds cost (average games) and how often they promote (pass rate). Games are independent, each a
 * draw with probability `drawRate`, otherwise won or lost so that the expected score is that of `trueElo`.
 */
import { logisticScore } from "./llr.ts";
import { type SprtBounds, sprt } from "./sprt.ts";

export interface SprtSimulation {
  trueElo: number;
  drawRate: number;
  bounds: SprtBounds;
  runs: number;
  /** A run still undecided after this many pairs counts as not passed. */
  maxPairs: number;
  /** Pairs between two looks at the SPRT, as the run machine aggregates results in batches. */
  batchPairs: number;
  /** Uniform on [0, 1); pass a seeded one for a repeatable simulation. */
  random: () => number;
}

export interface SprtSimulationResult {
  passRate: number;
  rejectRate: number;
  averageGames: number;
}

export function simulateSprt(sim: SprtSimulation): SprtSimulationResult {
  const score = logisticScore(sim.trueElo);
  const draw = Math.min(sim.drawRate, 2 * Math.min(score, 1 - score));
  const win = score - draw / 2;
  const game = () => {
    const r = sim.random();
    return r < win ? 2 : r < win + draw ? 1 : 0;
  };
  let passed = 0;
  let rejected = 0;
  let games = 0;
  for (let run = 0; run < sim.runs; run++) {
    const pairs: [number, number, number, number, number] = [0, 0, 0, 0, 0];
    for (let i = 1; i <= sim.maxPairs; i++) {
      const k = game() + game();
      pairs[k] = (pairs[k] as number) + 1;
      if (i % sim.batchPairs !== 0 && i !== sim.maxPairs) continue;
      const { decision } = sprt(pairs, sim.bounds);
      if (decision === "continue" && i < sim.maxPairs) continue;
      if (decision === "accept") passed++;
      if (decision === "reject") rejected++;
      games += 2 * i;
      break;
    }
  }
  return { passRate: passed / sim.runs, rejectRate: rejected / sim.runs, averageGames: games / sim.runs };
}
