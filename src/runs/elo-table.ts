import type { Db } from "../db/client.ts";
import { type Rating, rateElo } from "../eval/elo.ts";
import { BASELINE } from "./policy.ts";
import { matchResultsOf, modelsOf } from "./state.ts";

export type EloRow = Rating & { generation: number | null; state: string; games: number };

/**
 * A run's Elo table: Bradley-Terry over every match played, generation 0 at 0, each model tied to its parent by a
 * prior, the baselines rated in the same fit; with each rating's chance of being stronger than the best. Best first.
 */
export function eloTable(
  db: Db,
  run: string,
  best: string | null,
  /** The last table of the run, where the fit starts (a refit after a few games then takes a step or two). */
  previous?: { ratings: readonly { id: string; elo: number }[] },
): { anchor: string | null; best: string | null; ratings: EloRow[] } {
  const models = modelsOf(db, run);
  const results = matchResultsOf(db, run);
  const anchor = models.find((m) => m.generation === 0)?.id ?? null;
  if (!anchor) return { anchor: null, best, ratings: [] };
  const baselines = new Set<string>();
  for (const r of results) for (const p of [r.a, r.b]) if (BASELINE.test(p)) baselines.add(p);
  const players = [
    ...models.map((m) => ({ id: m.id, ...(m.parent ? { parent: m.parent } : {}) })),
    ...[...baselines].map((id) => ({ id })),
  ];
  const versus = best && models.some((m) => m.id === best) ? { versus: best } : {};
  const initial = previous ? new Map(previous.ratings.map((r) => [r.id, r.elo] as const)) : undefined;
  const ratings = rateElo(players, results, { anchor, ...versus, ...(initial ? { initial } : {}) });
  const byId = new Map(models.map((m) => [m.id, m] as const));
  const games = new Map<string, number>();
  for (const x of results) {
    const n = x.wins + x.draws + x.losses;
    for (const p of [x.a, x.b]) games.set(p, (games.get(p) ?? 0) + n);
  }
  return {
    anchor,
    best,
    ratings: ratings
      .map((r) => {
        const m = byId.get(r.id);
        return { ...r, generation: m?.generation ?? null, state: m?.state ?? "baseline", games: games.get(r.id) ?? 0 };
      })
      .sort((a, b) => b.elo - a.elo),
  };
}

/** Promoted generations a decision's snapshot keeps (the newest): its evidence must stay within the log's caps. */
const SNAPSHOT_GENERATIONS = 50;

/**
 * The table as a decision keeps it, for graphs of the run's progress: the newest promoted generations' and the
 * baselines' ratings with their intervals at that moment, rounded to whole Elo.
 */
export function eloSnapshot(db: Db, run: string, best: string | null): Record<string, [number, number, number]> {
  const rows = eloTable(db, run, best).ratings;
  const promoted = rows
    .filter((r) => r.state === "promoted" && r.generation !== null)
    .sort((a, b) => (b.generation ?? 0) - (a.generation ?? 0))
    .slice(0, SNAPSHOT_GENERATIONS);
  const out: Record<string, [number, number, number]> = {};
  for (const r of [...promoted, ...rows.filter((x) => x.state === "baseline")]) {
    const key = r.generation === null ? r.id : `g${r.generation}`;
    const values: [number, number, number] = [Math.round(r.elo), Math.round(r.low), Math.round(r.high)];
    if (values.every(Number.isFinite)) out[key] = values;
  }
  return out;
}
