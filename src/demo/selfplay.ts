// Self-play: the model plays itself with PUCT search, root noise and a temperature schedule, and each game becomes
// one JSON line: { moves: "4453...", visits: [[7 counts] per position], result: 1 | 0 | -1 (first player's view) }.

import { COLUMNS, Position, resultForFirst } from "./game.ts";
import { chooseMove, netEvaluator, Search, temperatureAt } from "./mcts.ts";
import type { Network } from "./net.ts";
import type { Rng } from "./random.ts";

export interface GameRecord {
  moves: string;
  visits: number[][];
  result: number;
  model?: string;
}

export interface SelfPlayOptions {
  sims: number;
  /** Plies played by sampling from the visit counts before switching to the most visited move. */
  sampledPlies: number;
  noiseFraction: number;
  dirichletAlpha: number;
}

export const SELFPLAY_DEFAULTS: SelfPlayOptions = {
  sims: 64,
  sampledPlies: 10,
  noiseFraction: 0.25,
  dirichletAlpha: 1,
};

export function playSelfPlayGame(net: Network, options: SelfPlayOptions, rng: Rng): GameRecord {
  const position = Position.start();
  const search = new Search(
    netEvaluator(net),
    position,
    { simulations: options.sims, noiseFraction: options.noiseFraction, dirichletAlpha: options.dirichletAlpha },
    rng,
  );
  const visits: number[][] = [];
  while (!position.isOver) {
    const counts = search.run();
    visits.push(Array.from(counts));
    const move = chooseMove(counts, temperatureAt(position.moves.length, options.sampledPlies), rng);
    position.play(move);
    search.advance(move);
  }
  return { moves: position.notation(), visits, result: resultForFirst(position.outcome ?? "draw") };
}

/** Parses and checks one game line; throws naming what is wrong. */
export function parseGameLine(line: string): GameRecord {
  const record = JSON.parse(line) as GameRecord;
  if (typeof record.moves !== "string") throw new Error("moves is not a string");
  const position = Position.fromNotation(record.moves);
  if (!Array.isArray(record.visits) || record.visits.length !== record.moves.length) {
    throw new Error("visits must hold one distribution per move");
  }
  for (const v of record.visits) {
    if (!Array.isArray(v) || v.length !== COLUMNS || v.some((x) => typeof x !== "number" || !(x >= 0))) {
      throw new Error("each visit distribution must be 7 non-negative numbers");
    }
  }
  if (![1, 0, -1].includes(record.result)) throw new Error("result must be 1, 0 or -1");
  if (position.isOver && resultForFirst(position.outcome ?? "draw") !== record.result) {
    throw new Error("result does not match the moves");
  }
  return record;
}
