/**
 * The gate's sequential test, as fishtest runs it: a generalised SPRT (stats/LLRcalc.py, ported in ./llr.ts) on
 * game pairs, or on single games when they are not paired. Draws, and pairs that split, count as what they are:
 * an all-draw match moves the LLR toward elo0, never past elo1.
 */
import { eloOfScore, type GameResults, llrLogistic, llrNormalized, meanAndVariance, resultsToPdf } from "./llr.ts";
import { normalCdf } from "./normal.ts";

export { eloOfScore, type GameResults, llrLogistic, llrNormalized, logisticScore, type Pentanomial } from "./llr.ts";

export interface SprtBounds {
  elo0: number;
  elo1: number;
  alpha: number;
  beta: number;
  /** How elo0 and elo1 are measured: logistic Elo (the default, our gate's) or fishtest's normalized Elo. */
  model?: "logistic" | "normalized";
}

export interface EloEstimate {
  /** Logistic Elo of the mean score, and the Elo of the ends of its 95% interval. */
  estimate: number;
  low: number;
  high: number;
  /** Likelihood of superiority: P(the candidate is stronger). */
  los: number;
}

export interface SprtState {
  llr: number;
  /** ln(beta / (1 - alpha)) and ln((1 - beta) / alpha): ±2.944 at 0.05 / 0.05. */
  lower: number;
  upper: number;
  /** "accept": the candidate is stronger by elo1 (promote); "reject": not stronger than elo0. */
  decision: "accept" | "reject" | "continue";
  /** Games, counting two per pair. */
  games: number;
  elo: EloEstimate;
}

/** Re-evaluate on every aggregated result: the state depends only on the counts so far. */
export function sprt(results: GameResults, bounds: SprtBounds): SprtState {
  const lower = Math.log(bounds.beta / (1 - bounds.alpha));
  const upper = Math.log((1 - bounds.beta) / bounds.alpha);
  const count = results.reduce((a, b) => a + b, 0);
  const games = (count * (results.length - 1)) / 2;
  const llr =
    count === 0
      ? 0
      : bounds.model === "normalized"
        ? llrNormalized(results, bounds.elo0, bounds.elo1)
        : llrLogistic(results, bounds.elo0, bounds.elo1);
  const decision = llr >= upper ? "accept" : llr <= lower ? "reject" : "continue";
  return { llr, lower, upper, decision, games, elo: estimateElo(results) };
}

/**
 * fishtest's get_elo(): the Elo of the (regularised) mean score per game, with a 95% interval and the LOS from the
 * variance of the results as given, so a pentanomial's interval counts the pairs' correlation.
 */
export function estimateElo(results: GameResults): EloEstimate {
  if (results.every((c) => c === 0)) return { estimate: 0, low: -Infinity, high: Infinity, los: 0.5 };
  const { count, pdf } = resultsToPdf(results);
  const { mean, variance } = meanAndVariance(pdf);
  const stderr = Math.sqrt(variance / count);
  const elo = (s: number) => (s <= 0 ? -Infinity : s >= 1 ? Infinity : eloOfScore(s));
  return {
    estimate: elo(mean),
    low: elo(mean - 1.959963984540054 * stderr),
    high: elo(mean + 1.959963984540054 * stderr),
    los: normalCdf((mean - 0.5) / stderr),
  };
}
