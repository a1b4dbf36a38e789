/**
 * The gate's sequential test, as fishtest runs it (stats/LLRcalc.py, LLR_logistic): a generalised SPRT on
 * game pairs. A pair is one opening played with both colours; the candidate scores 0 to 2 points over it,
 * counted as the pentanomial [c0..c4] of half-points. The log-likelihood ratio compares the maximum-likelihood
 * distributions of pair scores whose mean is the score of elo0 and of elo1 (logistic Elo), so draws, and pairs
 * that split, count as what they are: an all-draw match moves the LLR toward elo0, never past elo1.
 */

export type Pentanomial = readonly [number, number, number, number, number];

export interface SprtBounds {
  elo0: number;
  elo1: number;
  alpha: number;
  beta: number;
}

export interface SprtState {
  llr: number;
  /** ln(beta / (1 - alpha)) and ln((1 - beta) / alpha): ±2.944 at 0.05 / 0.05. */
  lower: number;
  upper: number;
  /** "accept": the candidate is stronger by elo1 (promote); "reject": not stronger than elo0. */
  decision: "accept" | "reject" | "continue";
  pairs: number;
  /** The pairs' Elo estimate with a 95% interval, from the mean and variance of the pair scores. */
  elo: { estimate: number; low: number; high: number };
}

/** Zero cells are replaced by this count, as fishtest's regularize() does, so every log is finite. */
const EPSILON = 1e-3;

/** The expected score of a player `elo` stronger (logistic). */
export function logisticScore(elo: number): number {
  return 1 / (1 + 10 ** (-elo / 400));
}

export function eloOfScore(score: number): number {
  return -400 * Math.log10(1 / score - 1);
}

export function sprt(pairs: Pentanomial, bounds: SprtBounds): SprtState {
  const lower = Math.log(bounds.beta / (1 - bounds.alpha));
  const upper = Math.log((1 - bounds.beta) / bounds.alpha);
  const count = pairs.reduce((a, b) => a + b, 0);
  const llr = count === 0 ? 0 : llrLogistic(pairs, bounds.elo0, bounds.elo1);
  const decision = llr >= upper ? "accept" : llr <= lower ? "reject" : "continue";
  return { llr, lower, upper, decision, pairs: count, elo: pairElo(pairs) };
}

/** fishtest's LLR_logistic on pentanomial counts. */
export function llrLogistic(pairs: Pentanomial, elo0: number, elo1: number): number {
  const counts = pairs.map((c) => (c === 0 ? EPSILON : c));
  const n = counts.reduce((a, b) => a + b, 0);
  const scores = counts.map((_, i) => i / (counts.length - 1));
  const p = counts.map((c) => c / n);
  const p0 = mleWithMean(scores, p, logisticScore(elo0));
  const p1 = mleWithMean(scores, p, logisticScore(elo1));
  let sum = 0;
  for (let i = 0; i < p.length; i++) sum += (p[i] as number) * Math.log((p1[i] as number) / (p0[i] as number));
  return n * sum;
}

/**
 * The distribution closest (in likelihood) to the observed `p` over `scores` whose mean is `s`: p_i / (1 + x(a_i - s))
 * with x the root of sum p_i (a_i - s) / (1 + x(a_i - s)) = 0 (fishtest's MLE_expected and secular()).
 */
function mleWithMean(scores: readonly number[], p: readonly number[], s: number): number[] {
  const d = scores.map((a) => a - s);
  const f = (x: number) => d.reduce((sum, di, i) => sum + ((p[i] as number) * di) / (1 + x * di), 0);
  // 1 + x d_i > 0 for every i bounds x to (-1/max d, -1/min d); f falls from +inf to -inf across it.
  const maxD = Math.max(...d);
  const minD = Math.min(...d);
  let lo = -1 / maxD + 1e-12;
  let hi = -1 / minD - 1e-12;
  for (let i = 0; i < 200 && hi - lo > 1e-15 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) > 0) lo = mid;
    else hi = mid;
  }
  const x = (lo + hi) / 2;
  return p.map((pi, i) => pi / (1 + x * (d[i] as number)));
}

/** Elo from the mean pair score, with a 95% interval from the pair scores' variance (no regularisation). */
function pairElo(pairs: Pentanomial): SprtState["elo"] {
  const n = pairs.reduce((a, b) => a + b, 0);
  if (n === 0) return { estimate: 0, low: -Infinity, high: Infinity };
  const mean = pairs.reduce((sum, c, i) => sum + (c * i) / 4, 0) / n;
  const variance = pairs.reduce((sum, c, i) => sum + c * (i / 4 - mean) ** 2, 0) / n;
  const half = 1.96 * Math.sqrt(variance / n);
  const clamp = (s: number) => Math.min(1 - 1e-9, Math.max(1e-9, s));
  return {
    estimate: eloOfScore(clamp(mean)),
    low: eloOfScore(clamp(mean - half)),
    high: eloOfScore(clamp(mean + half)),
  };
}
