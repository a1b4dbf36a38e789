/**
 * Elo for one run: Bradley-Terry maximum likelihood over every game played between its models and fixed
 * baselines, as KataGo's elo.py does it: priors as virtual games (a model starts as a few draws against its
 * parent, a player without one as a fraction of a draw against the anchor, so an unbeaten player stays finite),
 * Newton steps with a backtracking line search, and intervals from the inverse of the negated Hessian. One
 * player is the anchor at 0 (generation 0, or a baseline).
 */
import { normalCdf } from "./normal.ts";

export interface Player {
  id: string;
  /** The model it was trained from: the prior ties the two together with `parentDraws` virtual draws. */
  parent?: string;
}

/** Games between a and b, from a's side. */
export interface PairResult {
  a: string;
  b: string;
  wins: number;
  draws: number;
  losses: number;
}

export interface Rating {
  id: string;
  elo: number;
  /** Standard error relative to the anchor, and the 95% interval. */
  stderr: number;
  low: number;
  high: number;
  /** P(this player is stronger than `versus`), from the fit's covariance; only when `versus` is given. */
  pStronger?: number;
}

export interface EloOptions {
  anchor: string;
  parentDraws?: number;
  anchorDraws?: number;
  /** A player (e.g. the current best model) that every rating gets a P(stronger) against. */
  versus?: string;
  /**
   * Where Newton starts, by player (Elo): the last fit's ratings, so a refit after a few more games takes a step or
   * two instead of climbing from 0. The optimum is the same.
   */
  initial?: ReadonlyMap<string, number>;
}

const ELO_PER_UNIT = 400 / Math.LN10;

export function rateElo(players: readonly Player[], results: readonly PairResult[], opts: EloOptions): Rating[] {
  const index = new Map(players.map((p, i) => [p.id, i]));
  const anchor = index.get(opts.anchor);
  if (anchor === undefined) throw new Error(`anchor ${opts.anchor} is not a player`);
  const versus = opts.versus === undefined ? undefined : index.get(opts.versus);
  if (opts.versus !== undefined && versus === undefined) throw new Error(`versus ${opts.versus} is not a player`);
  // Games as (i, j, games, score of i), priors included; the anchor's strength stays 0.
  const games: { i: number; j: number; n: number; score: number }[] = [];
  const add = (i: number | undefined, j: number | undefined, n: number, score: number) => {
    if (i === undefined || j === undefined || i === j || n <= 0) return;
    games.push({ i, j, n, score });
  };
  for (const r of results) {
    add(index.get(r.a), index.get(r.b), r.wins + r.draws + r.losses, r.wins + r.draws / 2);
  }
  const parentDraws = opts.parentDraws ?? 4;
  const anchorDraws = opts.anchorDraws ?? 0.1;
  // Only a player without a parent leans on the anchor: a prior on every model would drag a long line of
  // ever-stronger generations back toward the anchor (by 100+ Elo after 1,000 generations in bench/elo).
  players.forEach((p, i) => {
    const parent = p.parent === undefined ? undefined : index.get(p.parent);
    if (parent !== undefined) add(i, parent, parentDraws, parentDraws / 2);
    else add(i, anchor, anchorDraws, anchorDraws / 2);
  });

  const free = eliminationOrder(players.length, anchor, games);
  const slot = new Int32Array(players.length).fill(-1);
  free.forEach((i, k) => {
    slot[i] = k;
  });
  const m = free.length;
  const r = new Float64Array(players.length);
  for (const i of free) {
    const start = opts.initial?.get((players[i] as Player).id);
    if (start !== undefined && Number.isFinite(start)) r[i] = start / ELO_PER_UNIT;
  }
  let cholesky: Float64Array = new Float64Array(0);
  let first: Int32Array = new Int32Array(0);
  for (let iter = 0; iter < 50; iter++) {
    const { grad, hessian } = derivatives(games, r, slot, m);
    first = envelope(hessian, m);
    cholesky = choleskyFactor(hessian, m, first);
    const step = choleskySolve(cholesky, m, grad, first);
    let scale = 1;
    const before = logLikelihood(games, r);
    const trial = new Float64Array(r);
    for (let k = 0; k < 30; k++) {
      for (let f = 0; f < m; f++)
        trial[free[f] as number] = (r[free[f] as number] as number) + scale * (step[f] as number);
      if (logLikelihood(games, trial) >= before - 1e-12) break;
      scale /= 2;
    }
    r.set(trial);
    let largest = 0;
    for (let f = 0; f < m; f++) largest = Math.max(largest, Math.abs(scale * (step[f] as number)));
    if (largest < 1e-9) break;
  }
  const variance = inverseDiagonal(cholesky, m, first);
  const varianceOf = (i: number) => ((slot[i] as number) < 0 ? 0 : (variance[slot[i] as number] as number));
  const pStronger = versus === undefined ? undefined : strongerThan(versus);
  return players.map((p, i) => {
    const elo = (r[i] as number) * ELO_PER_UNIT;
    const stderr = Math.sqrt(varianceOf(i)) * ELO_PER_UNIT;
    const rating: Rating = { id: p.id, elo, stderr, low: elo - 1.96 * stderr, high: elo + 1.96 * stderr };
    if (pStronger) rating.pStronger = pStronger(i);
    return rating;
  });

  /** P(r_i > r_v) with Var(r_i - r_v) = V_ii + V_vv - 2 V_iv, V's column v from one more solve. */
  function strongerThan(v: number): (i: number) => number {
    const sv = slot[v] as number;
    const unit = new Float64Array(m);
    if (sv >= 0) unit[sv] = 1;
    const column = sv >= 0 ? choleskySolve(cholesky, m, unit, first) : unit;
    return (i) => {
      if (i === v) return 0.5;
      const si = slot[i] as number;
      const cov = si >= 0 && sv >= 0 ? (column[si] as number) : 0;
      const sd = Math.sqrt(Math.max(varianceOf(i) + varianceOf(v) - 2 * cov, 1e-300));
      return normalCdf(((r[i] as number) - (r[v] as number)) / sd);
    };
  }
}

function logLikelihood(games: readonly { i: number; j: number; n: number; score: number }[], r: Float64Array): number {
  let sum = 0;
  for (const g of games) {
    const d = (r[g.i] as number) - (r[g.j] as number);
    // ln sigma(d) = -ln(1 + e^-d), written to stay finite for large |d|.
    const logWin = -softplus(-d);
    const logLoss = -softplus(d);
    sum += g.score * logWin + (g.n - g.score) * logLoss;
  }
  return sum;
}

function softplus(x: number): number {
  return x > 30 ? x : Math.log1p(Math.exp(x));
}

/** The gradient and the negated Hessian (positive definite) over the free players. */
function derivatives(
  games: readonly { i: number; j: number; n: number; score: number }[],
  r: Float64Array,
  slot: Int32Array,
  m: number,
): { grad: Float64Array; hessian: Float64Array } {
  const grad = new Float64Array(m);
  const hessian = new Float64Array(m * m);
  for (const g of games) {
    const p = 1 / (1 + Math.exp((r[g.j] as number) - (r[g.i] as number)));
    const w = g.n * p * (1 - p);
    const residual = g.score - g.n * p;
    const a = slot[g.i] as number;
    const b = slot[g.j] as number;
    if (a >= 0) {
      grad[a] = (grad[a] as number) + residual;
      hessian[a * m + a] = (hessian[a * m + a] as number) + w;
    }
    if (b >= 0) {
      grad[b] = (grad[b] as number) - residual;
      hessian[b * m + b] = (hessian[b * m + b] as number) + w;
    }
    if (a >= 0 && b >= 0) {
      hessian[a * m + b] = (hessian[a * m + b] as number) - w;
      hessian[b * m + a] = (hessian[b * m + a] as number) - w;
    }
  }
  return { grad, hessian };
}

/**
 * Free players in elimination order: the well-connected ones (baselines everybody plays) last, the rest as given
 * (a run's models in generation order, each playing its recent predecessors). The Hessian is then close to a band
 * with a few dense rows at the end, which the envelope Cholesky below factors in about n * band^2.
 */
function eliminationOrder(count: number, anchor: number, games: readonly { i: number; j: number }[]): number[] {
  const degree = new Int32Array(count);
  for (const g of games) {
    degree[g.i] = (degree[g.i] as number) + 1;
    degree[g.j] = (degree[g.j] as number) + 1;
  }
  const hub = Math.max(16, 2 * Math.sqrt(count));
  const all = Array.from({ length: count }, (_, i) => i).filter((i) => i !== anchor);
  return [...all.filter((i) => (degree[i] as number) <= hub), ...all.filter((i) => (degree[i] as number) > hub)];
}

/** For each row, the first column holding a non-zero (the row's envelope starts there; Cholesky keeps it). */
function envelope(a: Float64Array, m: number): Int32Array {
  const first = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    let j = 0;
    while (j < i && a[i * m + j] === 0) j++;
    first[i] = j;
  }
  return first;
}

/** Lower-triangular L with L L^T = A (A symmetric positive definite, row-major m x m), within A's envelope. */
function choleskyFactor(a: Float64Array, m: number, first: Int32Array): Float64Array {
  const l = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    const rowI = i * m;
    const fi = first[i] as number;
    for (let j = fi; j <= i; j++) {
      const rowJ = j * m;
      let s = a[rowI + j] as number;
      for (let k = Math.max(fi, first[j] as number); k < j; k++) s -= (l[rowI + k] as number) * (l[rowJ + k] as number);
      l[rowI + j] = j === i ? Math.sqrt(Math.max(s, 1e-300)) : s / (l[rowJ + j] as number);
    }
  }
  return l;
}

function choleskySolve(l: Float64Array, m: number, b: Float64Array, first: Int32Array): Float64Array {
  const y = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = b[i] as number;
    for (let k = first[i] as number; k < i; k++) s -= (l[i * m + k] as number) * (y[k] as number);
    y[i] = s / (l[i * m + i] as number);
  }
  const x = new Float64Array(y);
  for (let i = m - 1; i >= 0; i--) {
    x[i] = (x[i] as number) / (l[i * m + i] as number);
    const xi = x[i] as number;
    for (let k = first[i] as number; k < i; k++) x[k] = (x[k] as number) - (l[i * m + k] as number) * xi;
  }
  return x;
}

/** diag(A^-1) from A's Cholesky factor: the squared column norms of L^-1 (column c solves L x = e_c). */
function inverseDiagonal(l: Float64Array, m: number, first: Int32Array): Float64Array {
  const out = new Float64Array(m);
  const column = new Float64Array(m);
  for (let c = 0; c < m; c++) {
    column.fill(0, c);
    let sum = 0;
    for (let i = c; i < m; i++) {
      let s = i === c ? 1 : 0;
      for (let k = Math.max(c, first[i] as number); k < i; k++) s -= (l[i * m + k] as number) * (column[k] as number);
      const x = s / (l[i * m + i] as number);
      column[i] = x;
      sum += x * x;
    }
    out[c] = sum;
  }
  return out;
}
