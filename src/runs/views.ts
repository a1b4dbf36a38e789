import * as v from "valibot";
import {
  decisionSchema,
  modelRefSchema,
  pentanomialSchema,
  runContextSchema,
  runStageSchema,
} from "../machines/run-loop.ts";
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
  generation: v.number(),
  newGames: v.number(),
  why: v.nullable(v.string()),
  lastDecision: v.nullable(decisionSchema),
});

export const runHistoryRowSchema = v.object({
  seq: v.number(),
  run: v.string(),
  from: v.nullable(v.string()),
  to: v.string(),
  event: v.string(),
  cause: v.nullable(v.string()),
  detail: v.unknown(),
  term: v.number(),
  at: v.number(),
});

/** The gate's sequential test so far. */
const sprtProgressSchema = v.object({
  llr: v.number(),
  lower: v.number(),
  upper: v.number(),
  decision: v.picklist(["accept", "reject", "continue"]),
  games: v.number(),
  elo: v.object({ estimate: v.number(), low: v.number(), high: v.number(), los: v.number() }),
  pairs: pentanomialSchema,
  maxGames: v.number(),
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
  models: v.record(v.string(), v.number()),
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
      elo: v.number(),
      stderr: v.number(),
      low: v.number(),
      high: v.number(),
      pStronger: v.optional(v.number()),
      generation: v.nullable(v.number()),
      state: v.string(),
      games: v.number(),
    }),
  ),
});

export const runAnalyticsSchema = v.object({
  run: v.string(),
  selfplayLastHour: v.array(v.object({ node: v.string(), games: v.number(), items: v.number() })),
  generations: v.array(
    v.object({
      generation: v.number(),
      model: v.string(),
      state: v.string(),
      node: v.nullable(v.string()),
      trainedAt: v.number(),
      loss: v.unknown(),
      samples: v.unknown(),
      samplesPerSecond: v.unknown(),
      decision: v.nullable(v.object({ verdict: v.string(), at: v.number(), games: v.unknown(), llr: v.unknown() })),
    }),
  ),
  promotions: v.array(v.object({ generation: v.number(), at: v.optional(v.number()) })),
  eloHistory: v.array(v.object({ at: v.number(), verdict: v.string(), ratings: v.unknown() })),
});

/** An evaluation as listed: its counted match items as a number, a tournament's standings. */
export const evaluationViewSchema = v.object({
  ...evaluationRowSchema.entries,
  counted: v.number(),
  standings: v.optional(
    v.array(v.object({ player: v.string(), points: v.number(), games: v.number(), score: v.nullable(v.number()) })),
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
