import * as v from "valibot";
import {
  decisionSchema,
  modelRefSchema,
  pentanomialSchema,
  runContextSchema,
  runStageSchema,
} from "../machines/run-loop.ts";
import { wireNumberSchema } from "../net/bounds.ts";
import { evaluationRowSchema } from "./evaluation-state.ts";
import { modelRowSchema } from "./state.ts";

/**
 * A training run's answers on the wire (GET /runs, /runs/:name, its models, Elo, history, evaluations and the
 * operator's actions): the route table declares them, the handlers must return these shapes, the client checks them.
 */

export const runSummarySchema = v.object({
  name: v.string(),
  stage: runStageSchema,
  paused: v.boolean(),
  best: v.nullable(modelRefSchema),
  candidate: v.nullable(modelRefSchema),
  generation: wireNumberSchema,
  newGames: wireNumberSchema,
  why: v.nullable(v.string()),
  lastDecision: v.nullable(decisionSchema),
});

export const runHistoryRowSchema = v.object({
  seq: wireNumberSchema,
  run: v.string(),
  from: v.nullable(v.string()),
  to: v.string(),
  event: v.string(),
  cause: v.nullable(v.string()),
  detail: v.unknown(),
  term: wireNumberSchema,
  at: wireNumberSchema,
});

/** The gate's sequential test so far. */
const sprtProgressSchema = v.object({
  llr: wireNumberSchema,
  lower: wireNumberSchema,
  upper: wireNumberSchema,
  decision: v.picklist(["accept", "reject", "continue"]),
  games: wireNumberSchema,
  elo: v.object({ estimate: wireNumberSchema, low: wireNumberSchema, high: wireNumberSchema, los: wireNumberSchema }),
  pairs: pentanomialSchema,
  maxGames: wireNumberSchema,
});

export const runViewSchema = v.object({
  name: v.string(),
  stage: runStageSchema,
  why: v.nullable(v.string()),
  sprt: v.nullable(sprtProgressSchema),
  context: runContextSchema,
  /** The `[runs.<name>]` policy as the run was configured. */
  policy: v.record(v.string(), v.unknown()),
  /** Models by state. */
  models: v.record(v.string(), wireNumberSchema),
  history: v.array(runHistoryRowSchema),
});

export const modelViewSchema = v.object({
  ...modelRowSchema.entries,
  /** The nodes known to hold the model's file (null where data sync is off). */
  holders: v.nullable(v.array(v.string())),
});

export const eloTableSchema = v.object({
  anchor: v.nullable(v.string()),
  best: v.nullable(v.string()),
  ratings: v.array(
    v.object({
      id: v.string(),
      elo: wireNumberSchema,
      stderr: wireNumberSchema,
      low: wireNumberSchema,
      high: wireNumberSchema,
      pStronger: v.optional(wireNumberSchema),
      generation: v.nullable(wireNumberSchema),
      state: v.string(),
      games: wireNumberSchema,
    }),
  ),
});

export const runAnalyticsSchema = v.object({
  run: v.string(),
  selfplayLastHour: v.array(v.object({ node: v.string(), games: wireNumberSchema, items: wireNumberSchema })),
  generations: v.array(
    v.object({
      generation: wireNumberSchema,
      model: v.string(),
      state: v.string(),
      node: v.nullable(v.string()),
      trainedAt: wireNumberSchema,
      loss: v.unknown(),
      samples: v.unknown(),
      samplesPerSecond: v.unknown(),
      decision: v.nullable(
        v.object({ verdict: v.string(), at: wireNumberSchema, games: v.unknown(), llr: v.unknown() }),
      ),
    }),
  ),
  promotions: v.array(v.object({ generation: wireNumberSchema, at: v.optional(wireNumberSchema) })),
  eloHistory: v.array(v.object({ at: wireNumberSchema, verdict: v.string(), ratings: v.unknown() })),
});

/** An evaluation as listed: its counted match items as a number, a tournament's standings. */
export const evaluationViewSchema = v.object({
  ...evaluationRowSchema.entries,
  counted: wireNumberSchema,
  standings: v.optional(
    v.array(
      v.object({
        player: v.string(),
        points: wireNumberSchema,
        games: wireNumberSchema,
        score: v.nullable(wireNumberSchema),
      }),
    ),
  ),
});

/** An operator's step on a run (pause, resume, promote, rollback): taken, and the run after it. */
export const runStepAnswerSchema = v.object({
  taken: v.boolean(),
  reason: v.optional(v.string()),
  stage: v.optional(v.string()),
  run: runViewSchema,
});

export type RunView = v.InferOutput<typeof runViewSchema>;
export type ModelView = v.InferOutput<typeof modelViewSchema>;
export type EvaluationView = v.InferOutput<typeof evaluationViewSchema>;
