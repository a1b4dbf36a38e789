import type { Db } from "../db/client.ts";

/**
 * What a run's Elo table is computed from, as one string: the match tallies, the models and their states, and
 * the best. Equal strings mean an equal table, so the API and the dashboard refit (tens of ms at hundreds of
 * models, on the event loop) only when a match, a model or a decision has been applied since.
 */
export function eloInputsVersion(db: Db, run: string): string {
  const row = db.$client
    .prepare(
      `SELECT
         (SELECT count(*) || ':' || total(wins) || ':' || total(draws) || ':' || total(losses)
            FROM match_results WHERE run = ?1) AS matches,
         (SELECT count(*) || ':' || total(generation) || ':' || max(created_at) || ':' || max(coalesce(decided_at, 0))
                 || ':' || sum(state = 'promoted') || ':' || sum(state = 'rejected') || ':' || sum(state = 'archived')
                 || ':' || sum(state = 'evaluating')
            FROM models WHERE run = ?1) AS models,
         (SELECT json_extract(context, '$.best.id') FROM runs WHERE name = ?1) AS best`,
    )
    .get(run) as { matches: string; models: string; best: string | null } | null;
  return `${row?.matches}|${row?.models}|${row?.best}`;
}

/** The newest value per key and its version; recomputed when the version changes. Bounded by key count. */
export class VersionedCache<T> {
  private readonly entries = new Map<string, { version: string; value: T }>();

  constructor(private readonly maxKeys = 64) {}

  /** `compute` is given the key's previous value, if any, to start from. */
  read(key: string, version: string, compute: (previous: T | undefined) => T): T {
    const hit = this.entries.get(key);
    if (hit && hit.version === version) return hit.value;
    const value = compute(hit?.value);
    this.entries.delete(key);
    if (this.entries.size >= this.maxKeys) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { version, value });
    return value;
  }
}
