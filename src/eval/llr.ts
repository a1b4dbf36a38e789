/**
 * fishtest's generalised log-likelihood ratio (server/fishtest/stats/LLRcalc.py), ported: the observed results
 * are a distribution over scores; the LLR compares the maximum-likelihood distributions that meet H0 and H1.
 * Results are either a pentanomial [c0..c4] of game pairs scoring 0, 0.5, 1, 1.5, 2 points (one opening played
 * with both colours), or a trinomial [losses, draws, wins] of single games.
 */

export type Pentanomial = readonly [number, number, number, number, number];
export type Trinomial = readonly [number, number, number];
export type GameResults = Pentanomial | Trinomial;

/** A distribution over scores: values[i] has probability probs[i]. */
interface Pdf {
  values: readonly number[];
  probs: readonly number[];
}

/** Zero cells become this count, as fishtest's regularize() does, so every logarithm stays finite. */
const EPSILON = 1e-3;

/** 800 / ln 10: normalized Elo per unit of t-value (fishtest's nelo_divided_by_nt). */
const NELO_PER_T = 800 / Math.LN10;

/** The expected score of a player `elo` stronger (logistic Elo). */
export function logisticScore(elo: number): number {
  return 1 / (1 + 10 ** (-elo / 400));
}

export function eloOfScore(score: number): number {
  return -400 * Math.log10(1 / score - 1);
}

/** fishtest's regularize() and results_to_pdf(): the count and the scores' distribution (scores 0..1). */
export function resultsToPdf(results: GameResults): { count: number; pdf: Pdf } {
  const counts = results.map((c) => (c === 0 ? EPSILON : c));
  const count = counts.reduce((a, b) => a + b, 0);
  const values = counts.map((_, i) => i / (counts.length - 1));
  return { count, pdf: { values, probs: counts.map((c) => c / count) } };
}

export function meanAndVariance(pdf: Pdf): { mean: number; variance: number } {
  let mean = 0;
  pdf.values.forEach((v, i) => {
    mean += (pdf.probs[i] as number) * v;
  });
  let variance = 0;
  pdf.values.forEach((v, i) => {
    variance += (pdf.probs[i] as number) * (v - mean) ** 2;
  });
  return { mean, variance };
}

/** LLR of logistic elo1 against elo0 (fishtest's LLR_logistic, the statistic "expectation"). */
export function llrLogistic(results: GameResults, elo0: number, elo1: number): number {
  const { count, pdf } = resultsToPdf(results);
  const p0 = mleExpected(pdf, logisticScore(elo0));
  const p1 = mleExpected(pdf, logisticScore(elo1));
  return count * expectedLogRatio(pdf, p0, p1);
}

/**
 * LLR of normalized Elo nelo1 against nelo0 (fishtest's LLR_normalized, the statistic "t_value"): normalized
 * Elo scales the score's distance from 1/2 by its standard deviation per game (per pair / sqrt 2), so a draw-heavy
 * match needs a smaller score gap than logistic Elo would.
 */
export function llrNormalized(results: GameResults, nelo0: number, nelo1: number): number {
  const perResult = results.length === 5 ? Math.SQRT2 : 1;
  const { count, pdf } = resultsToPdf(results);
  const p0 = mleTValue(pdf, 0.5, (nelo0 / NELO_PER_T) * perResult);
  const p1 = mleTValue(pdf, 0.5, (nelo1 / NELO_PER_T) * perResult);
  return count * expectedLogRatio(pdf, p0, p1);
}

function expectedLogRatio(pdf: Pdf, p0: readonly number[], p1: readonly number[]): number {
  let sum = 0;
  pdf.probs.forEach((p, i) => {
    sum += p * (Math.log(p1[i] as number) - Math.log(p0[i] as number));
  });
  return sum;
}

/** The most likely distribution with mean s given the observed one (fishtest's MLE_expected). */
function mleExpected(pdf: Pdf, s: number): number[] {
  const shifted = pdf.values.map((a) => a - s);
  const x = secular(shifted, pdf.probs);
  return pdf.probs.map((p, i) => p / (1 + x * (shifted[i] as number)));
}

/** The most likely distribution with t-value (mean - ref) / sigma = t (fishtest's MLE_t_value, a fixed point). */
function mleTValue(pdf: Pdf, ref: number, t: number): number[] {
  let mle: number[] = pdf.values.map(() => 1 / pdf.values.length);
  for (let iter = 0; iter < 10; iter++) {
    const { mean, variance } = meanAndVariance({ values: pdf.values, probs: mle });
    const sigma = Math.sqrt(variance);
    const shifted = pdf.values.map((a) => a - ref - (t * sigma * (1 + ((mean - a) / sigma) ** 2)) / 2);
    const x = secular(shifted, pdf.probs);
    const next = pdf.probs.map((p, i) => p / (1 + x * (shifted[i] as number)));
    const change = Math.max(...next.map((p, i) => Math.abs(p - (mle[i] as number))));
    mle = next;
    if (change < 1e-9) break;
  }
  return mle;
}

/**
 * The root x of sum p_i a_i / (1 + x a_i) = 0 (fishtest's secular()). 1 + x a_i > 0 for every i bounds x to
 * (-1/max a, -1/min a), where the sum falls from +inf to -inf; bisection finds the root to machine precision.
 */
function secular(a: readonly number[], p: readonly number[]): number {
  const min = Math.min(...a);
  const max = Math.max(...a);
  if (!(min < 0 && max > 0)) throw new RangeError("the hypothesis lies outside the scores' range");
  const f = (x: number) => a.reduce((sum, ai, i) => sum + ((p[i] as number) * ai) / (1 + x * ai), 0);
  let lo = -1 / max + 1e-9;
  let hi = -1 / min - 1e-9;
  for (let i = 0; i < 200 && hi - lo > 1e-15 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) > 0) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
