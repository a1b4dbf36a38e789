// The players of a match: a model with PUCT search, `random`, or `mcts:N` (UCT with random rollouts).

import type { Position } from "./game.ts";
import { chooseMove, netEvaluator, rolloutEvaluator, Search } from "./mcts.ts";
import { readModel } from "./model-file.ts";
import { Rng } from "./random.ts";

export interface Player {
  readonly name: string;
  /** Starts a new game from this position. */
  reset(position: Position): void;
  chooseMove(position: Position): number;
  /** Told every move played (its own and the opponent's), to keep its tree. */
  observe(move: number): void;
}

export interface PlayerOptions {
  sims: number;
  seed: number;
}

/** `random`, `mcts:N`, or the path of a model file. */
export function makePlayer(spec: string, options: PlayerOptions): Player {
  const rng = new Rng(options.seed);
  if (spec === "random") {
    return {
      name: "random",
      reset() {},
      chooseMove(position) {
        const moves = position.legalMoves();
        return moves[rng.int(moves.length)] as number;
      },
      observe() {},
    };
  }
  const rollout = /^mcts:(\d+)$/.exec(spec);
  if (rollout) {
    const sims = Number(rollout[1]);
    if (sims < 1) throw new Error(`${spec}: mcts needs at least 1 simulation`);
    return searchPlayer(spec, rolloutEvaluator(rng), { simulations: sims, selection: "uct" }, rng);
  }
  const model = readModel(spec);
  return searchPlayer(model.sha256.slice(0, 12), netEvaluator(model.net), { simulations: options.sims }, rng);
}

function searchPlayer(
  name: string,
  evaluator: ReturnType<typeof netEvaluator>,
  options: ConstructorParameters<typeof Search>[2],
  rng: Rng,
): Player {
  let search: Search | undefined;
  return {
    name,
    reset(position) {
      search = new Search(evaluator, position, options, rng);
    },
    chooseMove(position) {
      search ??= new Search(evaluator, position, options, rng);
      return chooseMove(search.run(), 0, rng);
    },
    observe(move) {
      search?.advance(move);
    },
  };
}
