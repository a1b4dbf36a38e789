// Monte Carlo tree search. One tree code serves both players of the demo: PUCT guided by the network (priors and
// value from the net, Dirichlet noise at the root for self-play), and plain UCT with random rollouts for the
// `mcts:N` baseline. The tree is kept between moves (advance) so the next search starts from the subtree.

import { COLUMNS, INPUT_SIZE, type Position } from "./game.ts";
import type { Network } from "./net.ts";
import type { Rng } from "./random.ts";

export interface Evaluation {
  /** Prior per column, zero for illegal ones, summing to 1 over the legal ones. */
  priors: Float32Array;
  /** Expected result for the side to move, in [-1, 1]. */
  value: number;
}

export interface Evaluator {
  evaluate(position: Position): Evaluation;
}

export function netEvaluator(net: Network): Evaluator {
  const input = new Float32Array(INPUT_SIZE);
  return {
    evaluate(position) {
      position.encode(input);
      const { policy, value } = net.evaluate(input);
      return { priors: maskedPriors(position, policy), value };
    },
  };
}

/** Uniform priors and the result of one random playout, for the network-free baseline. */
export function rolloutEvaluator(rng: Rng): Evaluator {
  return {
    evaluate(position) {
      const me = position.toMove;
      const playout = position.clone();
      while (!playout.isOver) {
        const moves = playout.legalMoves();
        playout.play(moves[rng.int(moves.length)] as number);
      }
      const outcome = playout.outcome;
      const value = outcome === "draw" ? 0 : (outcome === "first") === (me === 0) ? 1 : -1;
      return { priors: maskedPriors(position, new Float32Array(COLUMNS).fill(1)), value };
    },
  };
}

function maskedPriors(position: Position, policy: Float32Array): Float32Array {
  const priors = new Float32Array(COLUMNS);
  let sum = 0;
  for (let c = 0; c < COLUMNS; c++) {
    if (!position.canPlay(c)) continue;
    priors[c] = policy[c] as number;
    sum += policy[c] as number;
  }
  const legal = position.legalMoves();
  for (let c = 0; c < COLUMNS; c++) {
    if (!position.canPlay(c)) continue;
    priors[c] = sum > 0 ? (priors[c] as number) / sum : 1 / legal.length;
  }
  return priors;
}

class Node {
  /** Priors used for selection (the root's carry Dirichlet noise during self-play). */
  priors: Float32Array;
  readonly rawPriors: Float32Array;
  readonly visits = new Float64Array(COLUMNS);
  /** Sum of backed-up values per move, from the view of the side to move at this node. */
  readonly valueSums = new Float64Array(COLUMNS);
  readonly children: (Node | undefined)[] = new Array(COLUMNS).fill(undefined);
  total = 0;

  constructor(
    priors: Float32Array,
    /** Set for a finished game: the result for the side to move (a loss, or 0 for a draw). */
    readonly terminalValue?: number,
  ) {
    this.priors = priors;
    this.rawPriors = priors;
  }
}

export interface SearchOptions {
  simulations: number;
  /** "puct" uses the priors; "uct" is UCB1 (unvisited moves first), for rollouts. */
  selection?: "puct" | "uct";
  cPuct?: number;
  /** Dirichlet noise mixed into the root priors; 0 turns it off (matches, analysis). */
  noiseFraction?: number;
  dirichletAlpha?: number;
}

export class Search {
  private root: Node | undefined;
  private rootNoised = false;
  private position: Position;
  private readonly selection: "puct" | "uct";
  private readonly cPuct: number;
  private readonly noiseFraction: number;
  private readonly dirichletAlpha: number;

  constructor(
    private readonly evaluator: Evaluator,
    start: Position,
    private readonly options: SearchOptions,
    private readonly rng: Rng,
  ) {
    this.position = start.clone();
    this.selection = options.selection ?? "puct";
    this.cPuct = options.cPuct ?? (this.selection === "uct" ? Math.SQRT2 : 1.5);
    this.noiseFraction = options.noiseFraction ?? 0;
    this.dirichletAlpha = options.dirichletAlpha ?? 1.0;
  }

  /** Runs the simulations from the current position and returns the root's visit counts per column. */
  run(): Float64Array {
    if (this.position.isOver) throw new Error("the game is over");
    const root = this.ensureRoot();
    for (let i = 0; i < this.options.simulations; i++) this.simulate(root);
    return root.visits.slice();
  }

  /** The root's mean value per move (from the side to move's view), NaN for unvisited moves. */
  rootValues(): number[] {
    const root = this.ensureRoot();
    return Array.from(root.visits, (n, c) => (n > 0 ? (root.valueSums[c] as number) / n : Number.NaN));
  }

  /** Plays a move and keeps its subtree as the next root. */
  advance(move: number): void {
    this.position.play(move);
    this.root = this.root?.children[move];
    this.rootNoised = false;
  }

  private ensureRoot(): Node {
    if (!this.root) this.root = this.expand(this.position);
    if (!this.rootNoised && this.noiseFraction > 0 && !this.root.terminalValue) {
      const legal = this.position.legalMoves();
      const noise = this.rng.dirichlet(this.dirichletAlpha, legal.length);
      const priors = new Float32Array(COLUMNS);
      legal.forEach((c, i) => {
        priors[c] =
          (1 - this.noiseFraction) * (this.root?.rawPriors[c] as number) + this.noiseFraction * (noise[i] ?? 0);
      });
      this.root.priors = priors;
      this.rootNoised = true;
    }
    return this.root;
  }

  private expand(position: Position): Node {
    if (position.isOver) return new Node(new Float32Array(COLUMNS), position.outcome === "draw" ? 0 : -1);
    const { priors } = this.evaluator.evaluate(position);
    return new Node(priors);
  }

  private simulate(root: Node): void {
    const position = this.position.clone();
    const path: [Node, number][] = [];
    let node = root;
    let value: number;
    for (;;) {
      if (node.terminalValue !== undefined) {
        value = node.terminalValue;
        break;
      }
      const move = this.select(node, position);
      path.push([node, move]);
      position.play(move);
      const child = node.children[move];
      if (child) {
        node = child;
        continue;
      }
      if (position.isOver) {
        const leaf = new Node(new Float32Array(COLUMNS), position.outcome === "draw" ? 0 : -1);
        node.children[move] = leaf;
        value = leaf.terminalValue as number;
      } else {
        const evaluation = this.evaluator.evaluate(position);
        node.children[move] = new Node(evaluation.priors);
        value = evaluation.value;
      }
      break;
    }
    // value is from the view of the side to move at the leaf; each parent sees it negated.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, move] = path[i] as [Node, number];
      value = -value;
      parent.visits[move] = (parent.visits[move] as number) + 1;
      parent.valueSums[move] = (parent.valueSums[move] as number) + value;
      parent.total++;
    }
  }

  private select(node: Node, position: Position): number {
    let best = -1;
    let bestScore = Number.NEGATIVE_INFINITY;
    const sqrtTotal = Math.sqrt(Math.max(node.total, 1));
    const logTotal = Math.log(Math.max(node.total, 1));
    for (let c = 0; c < COLUMNS; c++) {
      if (!position.canPlay(c)) continue;
      const n = node.visits[c] as number;
      const q = n > 0 ? (node.valueSums[c] as number) / n : 0;
      let score: number;
      if (this.selection === "uct")
        score = n === 0 ? Number.POSITIVE_INFINITY : q + this.cPuct * Math.sqrt(logTotal / n);
      else score = q + (this.cPuct * (node.priors[c] as number) * sqrtTotal) / (1 + n);
      if (score > bestScore) {
        bestScore = score;
        best = c;
      }
    }
    return best;
  }
}

/** Picks a move from visit counts: the most visited at temperature 0, else sampled from visits^(1/T). */
export function chooseMove(visits: Float64Array, temperature: number, rng: Rng): number {
  if (temperature <= 0) {
    let best = 0;
    for (let c = 1; c < visits.length; c++) if ((visits[c] as number) > (visits[best] as number)) best = c;
    return best;
  }
  const weights = Array.from(visits, (n) => n ** (1 / temperature));
  const sum = weights.reduce((total, w) => total + w, 0);
  let r = rng.next() * sum;
  for (let c = 0; c < weights.length; c++) {
    r -= weights[c] as number;
    if (r < 0 && (weights[c] as number) > 0) return c;
  }
  return weights.findLastIndex((w) => w > 0);
}

/** Self-play's temperature schedule: sample from visits for the first plies, then play the most visited move. */
export function temperatureAt(ply: number, sampledPlies: number): number {
  return ply < sampledPlies ? 1 : 0;
}
