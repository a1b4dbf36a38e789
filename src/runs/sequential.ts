import { type SprtState, sprt } from "../eval/sprt.ts";
import type { Pentanomial } from "../machines/run-loop.ts";
import type { AbtestParams } from "./evaluation-state.ts";

/**
 * Where a sequential test played as paired match items stands (a run's gate, an A/B test): decided, with the
 * evidence kept with the decision, or how many more items to queue. It stops as soon as the SPRT decides or the
 * games reach the maximum (undecided), and keeps at least two items, or one a slot, in flight until then.
 */
export type SequentialTest =
  | { done: true; state: SprtState; games: number; evidence: Record<string, unknown> }
  | { done: false; state: SprtState; games: number; add: number; gamesPerItem: number };

export function sequentialTest(pairs: Pentanomial, params: AbtestParams, open: number, slots: number): SequentialTest {
  const played = pairs.reduce((a, b) => a + b, 0);
  const state = safeSprt(pairs, params);
  const games = 2 * played;
  if (state.decision !== "continue" || games >= params.max_games) {
    const { elo0, elo1, alpha, beta } = params;
    const { llr, lower, upper } = state;
    const evidence = { pairs, games, llr, lower, upper, elo0, elo1, alpha, beta, elo: finiteOrNull(state.elo) };
    return { done: true, state, games, evidence };
  }
  const left = Math.max(0, params.max_games / 2 - played - open * params.pairs_per_item);
  const add = Math.min(Math.max(2, slots) - open, Math.ceil(left / params.pairs_per_item));
  return { done: false, state, games, add, gamesPerItem: 2 * Math.min(params.pairs_per_item, left) };
}

/** An all-won match has an Elo estimate of +infinity: the log takes only finite numbers, so such values go as null. */
function finiteOrNull<T extends object>(values: T): { [K in keyof T]: T[K] | null } {
  return Object.fromEntries(
    Object.entries(values).map(([k, x]) => [k, typeof x === "number" && !Number.isFinite(x) ? null : x]),
  ) as { [K in keyof T]: T[K] | null };
}

/** The SPRT, or (for a hypothesis the counts cannot express) an undecided state rather than a throw. */
function safeSprt(pairs: Pentanomial, params: AbtestParams): SprtState {
  try {
    return sprt(pairs, params);
  } catch {
    const games = 2 * pairs.reduce((a, b) => a + b, 0);
    return {
      llr: 0,
      lower: Math.log(params.beta / (1 - params.alpha)),
      upper: Math.log((1 - params.beta) / params.alpha),
      decision: "continue",
      games,
      elo: { estimate: 0, low: 0, high: 0, los: 0.5 },
    };
  }
}
