import { and, desc, eq } from "drizzle-orm";
import * as v from "valibot";
import type { Db } from "../db/client.ts";
import { evaluations } from "../db/schema.ts";
import { type Pentanomial, pentanomialSchema } from "../machines/run-loop.ts";
import { wireNumberSchema } from "../net/bounds.ts";
import { BASELINE, evenGames, pairsPerItem, sprtGateSchema } from "./policy.ts";

/**
 * On-demand evaluations of a run's models: an A/B test (two models, the gate's sequential test on game pairs,
 * stopped as soon as it decides) and a round-robin tournament (every pairing of the chosen players, a fixed number
 * of games each). Both are replicated like the run: created by an operator's command, their match items queued and
 * their outcome decided by the leader's plan, their results counted in the apply of each match's completion.
 */

export type EvaluationKind = "abtest" | "tournament";
export const EVALUATION_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export const abtestParamsSchema = sprtGateSchema;
export const tournamentParamsSchema = v.strictObject({
  games_per_pair: v.optional(evenGames(10_000), 40),
  pairs_per_item: pairsPerItem,
});

export type AbtestParams = v.InferOutput<typeof abtestParamsSchema>;
export type TournamentParams = v.InferOutput<typeof tournamentParamsSchema>;

const gamesSchema = v.object({ wins: wireNumberSchema, draws: wireNumberSchema, losses: wireNumberSchema });
export type Games = v.InferOutput<typeof gamesSchema>;

/** An A/B test or tournament as the replicated state holds it (and the API answers it). */
export const evaluationRowSchema = v.object({
  id: v.string(),
  run: v.string(),
  kind: v.picklist(["abtest", "tournament"]),
  players: v.array(v.string()),
  params: v.union([abtestParamsSchema, tournamentParamsSchema]),
  state: v.picklist(["running", "done", "cancelled"]),
  /** abtest: `{pairs}` from the first player's side; tournament: games per pairing, keyed "a b". */
  results: v.object({ pairs: v.optional(pentanomialSchema), games: v.optional(v.record(v.string(), gamesSchema)) }),
  counted: v.array(v.string()),
  outcome: v.unknown(),
  cause: v.nullable(v.string()),
  createdAt: wireNumberSchema,
  updatedAt: wireNumberSchema,
});
export type EvaluationRow = v.InferOutput<typeof evaluationRowSchema>;

export function readEvaluation(db: Db, id: string): EvaluationRow | undefined {
  return db.select().from(evaluations).where(eq(evaluations.id, id)).get() as EvaluationRow | undefined;
}

export function evaluationsOf(db: Db, run: string, kind?: EvaluationKind): EvaluationRow[] {
  return db
    .select()
    .from(evaluations)
    .where(and(eq(evaluations.run, run), kind ? eq(evaluations.kind, kind) : undefined))
    .orderBy(desc(evaluations.createdAt))
    .all() as EvaluationRow[];
}

export function runningEvaluations(db: Db): EvaluationRow[] {
  return db.select().from(evaluations).where(eq(evaluations.state, "running")).all() as EvaluationRow[];
}

/** Every pairing of a tournament, a model first (a baseline only ever stands second). */
export function pairings(players: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < players.length; i++) {
    for (let j = i + 1; j < players.length; j++) {
      const [a, b] = [players[i] as string, players[j] as string];
      if (BASELINE.test(a) && BASELINE.test(b)) continue;
      out.push(BASELINE.test(a) ? [b, a] : [a, b]);
    }
  }
  return out;
}

/** A match of an evaluation completed: its games count once, while the evaluation runs. */
export function evaluationMatchFinished(
  db: Db,
  id: string,
  itemId: string,
  a: string,
  b: string,
  games: Games & { pairs: Pentanomial },
  now: number,
): void {
  const row = readEvaluation(db, id);
  if (row?.state !== "running" || row.counted.includes(itemId)) return;
  const results = structuredClone(row.results);
  if (row.kind === "abtest") {
    // Pairs from the first player's side: a match played the other way round counts mirrored.
    const pairs = a === row.players[0] ? games.pairs : ([...games.pairs].reverse() as Pentanomial);
    results.pairs = (results.pairs ?? [0, 0, 0, 0, 0]).map((n, i) => n + (pairs[i] ?? 0)) as Pentanomial;
  } else {
    const key = `${a} ${b}`;
    const before = results.games?.[key] ?? { wins: 0, draws: 0, losses: 0 };
    results.games = {
      ...results.games,
      [key]: {
        wins: before.wins + games.wins,
        draws: before.draws + games.draws,
        losses: before.losses + games.losses,
      },
    };
  }
  db.update(evaluations)
    .set({ results, counted: [...row.counted, itemId], updatedAt: now })
    .where(eq(evaluations.id, id))
    .run();
}

/** The unfinished match items of an evaluation. */
export function openEvaluationItems(db: Db, id: string): string[] {
  const rows = db.$client
    .prepare(
      `SELECT id FROM work_items WHERE state IN ('pending', 'claimed', 'running', 'retry-wait', 'failed')
       AND json_extract(config, '$.eval') = ?`,
    )
    .all(id) as { id: string }[];
  return rows.map((r) => r.id);
}
