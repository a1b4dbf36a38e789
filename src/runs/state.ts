import { and, asc, desc, eq, sql } from "drizzle-orm";
import * as v from "valibot";
import { initialTransition, transition } from "xstate";
import type { Db } from "../db/client.ts";
import { matchResults, models, runHistory, runs } from "../db/schema.ts";
import {
  initialRunContext,
  type RunContext,
  type RunEvent,
  type RunStage,
  runLoopMachine,
} from "../machines/run-loop.ts";
import { wireNumberSchema } from "../net/bounds.ts";
import { runningEvaluations } from "./evaluation-state.ts";
import type { RunPolicy } from "./policy.ts";
import { modelsToArchive } from "./retention.ts";

/**
 * A run's replicated state: its loop machine (stage and context) in the `runs` table, every transition in
 * `run_history`, its models in `models` and its match results in `match_results`. Only replicated commands
 * call the writers here, inside their apply, so every voter holds the same rows.
 */

export interface RunRow {
  name: string;
  stage: RunStage;
  context: RunContext;
  policy: RunPolicy;
  createdAt: number;
  updatedAt: number;
}

export const modelStateSchema = v.picklist(["candidate", "evaluating", "promoted", "rejected", "archived"]);
export type ModelState = v.InferOutput<typeof modelStateSchema>;

/** A model in the run's registry. */
export const modelRowSchema = v.object({
  id: v.string(),
  run: v.string(),
  generation: wireNumberSchema,
  parent: v.nullable(v.string()),
  itemId: v.nullable(v.string()),
  node: v.nullable(v.string()),
  file: v.string(),
  state: modelStateSchema,
  /** What the training reported (losses, samples): the job's own JSON. */
  metrics: v.unknown(),
  createdAt: wireNumberSchema,
  decidedAt: v.nullable(wireNumberSchema),
});
export type ModelRow = v.InferOutput<typeof modelRowSchema>;

/** When, under which term and why a run moves. */
export interface RunStepAt {
  now: number;
  term: number;
  cause: string;
}

export function readRun(db: Db, name: string): RunRow | undefined {
  const row = db.select().from(runs).where(eq(runs.name, name)).get();
  return row ? toRun(row) : undefined;
}

export function listRuns(db: Db): RunRow[] {
  return db.select().from(runs).orderBy(asc(runs.name)).all().map(toRun);
}

function toRun(row: typeof runs.$inferSelect): RunRow {
  return {
    name: row.name,
    stage: row.state as RunStage,
    context: row.context as RunContext,
    policy: row.policy as RunPolicy,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** Creates the run in its first stage, or replaces its policy; a run's loop state is never reset here. */
export function configureRun(db: Db, name: string, policy: RunPolicy, at: RunStepAt): "created" | "updated" | "same" {
  const existing = readRun(db, name);
  if (!existing) {
    const [initial] = initialTransition(runLoopMachine, initialRunContext());
    db.insert(runs)
      .values({
        name,
        state: initial.value as RunStage,
        context: initial.context,
        policy,
        createdAt: at.now,
        updatedAt: at.now,
      })
      .run();
    history(db, name, null, initial.value as RunStage, "configure", { ...at, cause: `created from ${at.cause}` }, null);
    return "created";
  }
  if (JSON.stringify(existing.policy) === JSON.stringify(policy)) return "same";
  db.update(runs).set({ policy, updatedAt: at.now }).where(eq(runs.name, name)).run();
  history(
    db,
    name,
    existing.stage,
    existing.stage,
    "configure",
    { ...at, cause: `policy updated from ${at.cause}` },
    null,
  );
  return "updated";
}

/**
 * Runs the loop machine of `name` on one event and stores what changed, with a history row when the stage
 * moves or the event was taken. Returns the run before and after, or null when there is no such run.
 */
export function stepRun(
  db: Db,
  name: string,
  event: RunEvent,
  at: RunStepAt,
): { before: RunRow; after: RunRow; taken: boolean } | null {
  const before = readRun(db, name);
  if (!before) return null;
  const snapshot = runLoopMachine.resolveState({ value: before.stage, context: before.context });
  const [next] = transition(runLoopMachine, snapshot, event);
  const stage = next.value as RunStage;
  const taken = stage !== before.stage || JSON.stringify(next.context) !== JSON.stringify(before.context);
  const after: RunRow = { ...before, stage, context: next.context, updatedAt: at.now };
  if (!taken) return { before, after: before, taken };
  db.update(runs).set({ state: stage, context: next.context, updatedAt: at.now }).where(eq(runs.name, name)).run();
  // Game counts arrive with every self-play item: they move a counter, not the story of the run.
  if (event.type !== "games") history(db, name, before.stage, stage, event.type, at, detailOf(event));
  return { before, after, taken };
}

function detailOf(event: RunEvent): unknown {
  switch (event.type) {
    case "best-set":
    case "trained":
      return { model: event.model };
    case "train-queued":
      return { generation: event.generation, item: event.itemId };
    case "train-failed":
      return { item: event.itemId, error: event.error };
    case "match-result":
      return { item: event.itemId, candidate: event.candidate, opponent: event.opponent, pairs: event.pairs };
    case "decided":
      return { candidate: event.candidate, verdict: event.verdict, evidence: event.evidence };
    default:
      return null;
  }
}

function history(
  db: Db,
  run: string,
  from: RunStage | null,
  to: RunStage,
  event: string,
  at: RunStepAt,
  detail: unknown,
): void {
  db.insert(runHistory).values({ run, from, to, event, cause: at.cause, detail, term: at.term, at: at.now }).run();
}

/** The run's decisions (promote or reject, with their evidence), oldest first. */
export function decisionsOf(db: Db, run: string) {
  return db
    .select()
    .from(runHistory)
    .where(and(eq(runHistory.run, run), eq(runHistory.event, "decided")))
    .orderBy(asc(runHistory.seq))
    .all();
}

export function runHistoryOf(db: Db, run: string, limit: number) {
  return db
    .select()
    .from(runHistory)
    .where(eq(runHistory.run, run))
    .orderBy(desc(runHistory.seq))
    .limit(limit)
    .all()
    .reverse();
}

/** Adds a model to the registry; a model already registered (the same file again) is left as it is. */
export function registerModel(db: Db, model: Omit<ModelRow, "decidedAt">): boolean {
  const existing = readModel(db, model.id);
  if (existing) return false;
  db.insert(models)
    .values({ ...model, decidedAt: null })
    .run();
  return true;
}

export function setModelState(db: Db, id: string, state: ModelState, now: number): void {
  db.update(models).set({ state, decidedAt: now }).where(eq(models.id, id)).run();
}

/**
 * Archives the run's models that retention no longer keeps (`keep_models` newest generations; the best, the
 * candidate and the players of a running evaluation stay): their files are then deleted on every node.
 */
export function archiveOldModels(db: Db, run: string, now: number): void {
  const row = readRun(db, run);
  if (!row) return;
  const pinned = new Set<string>();
  for (const ref of [row.context.best, row.context.candidate]) if (ref) pinned.add(ref.id);
  for (const evaluation of runningEvaluations(db)) {
    if (evaluation.run === run) for (const player of evaluation.players) pinned.add(player);
  }
  for (const id of modelsToArchive(modelsOf(db, run), row.policy.keep_models, pinned)) {
    setModelState(db, id, "archived", now);
  }
}

export function readModel(db: Db, id: string): ModelRow | undefined {
  return db.select().from(models).where(eq(models.id, id)).get() as ModelRow | undefined;
}

export function modelsOf(db: Db, run: string): ModelRow[] {
  return db
    .select()
    .from(models)
    .where(eq(models.run, run))
    .orderBy(asc(models.generation), asc(models.createdAt))
    .all() as ModelRow[];
}

/** Adds one match's games to the pair's tally (a's side); the Elo fit reads these. */
export function addMatchResult(
  db: Db,
  run: string,
  a: string,
  b: string,
  games: { wins: number; draws: number; losses: number },
): void {
  db.insert(matchResults)
    .values({ run, a, b, ...games })
    .onConflictDoUpdate({
      target: [matchResults.run, matchResults.a, matchResults.b],
      set: {
        wins: sql`${matchResults.wins} + ${games.wins}`,
        draws: sql`${matchResults.draws} + ${games.draws}`,
        losses: sql`${matchResults.losses} + ${games.losses}`,
      },
    })
    .run();
}

export function matchResultsOf(db: Db, run: string) {
  return db.select().from(matchResults).where(eq(matchResults.run, run)).all();
}

export function modelsByState(db: Db, run: string, state: ModelState): ModelRow[] {
  return db
    .select()
    .from(models)
    .where(and(eq(models.run, run), eq(models.state, state)))
    .all() as ModelRow[];
}

/** Games each node's self-play of the run completed since `since` (by the node that ran it). */
export function selfplayGamesByNode(
  db: Db,
  run: string,
  since: number,
): Array<{ node: string; games: number; items: number }> {
  return (
    db.$client
      .prepare(
        `SELECT h.node AS node, sum(json_extract(w.context, '$.result.games')) AS games, count(*) AS items
       FROM work_items w JOIN work_history h ON h.item_id = w.id AND h.to_state = 'completed'
       WHERE w.id >= ? AND w.id < ? AND +w.state = 'completed' AND w.updated_at >= ?
         AND json_extract(w.config, '$.run') = ? AND json_extract(w.config, '$.stage') = 'selfplay'
       GROUP BY h.node ORDER BY h.node`,
      )
      // The run's self-play items are named "<run>.selfplay.<...>": a range of the primary key, not the whole queue.
      .all(`${run}.selfplay.`, `${run}.selfplay/`, since, run) as Array<{ node: string; games: number; items: number }>
  );
}
