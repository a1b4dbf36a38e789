import * as v from "valibot";

/**
 * A training run's answers on the wire (GET /runs, /runs/:name, its models, Elo, history, evaluations and the
 * operator's actions): the route table declares them, the handlers must return these shapes, the client checks them.
 */

const modelRefSchema = v.object({ id: v.string(), generation: v.number() });
const pentanomialSchema = v.tuple([v.number(), v.number(), v.number(), v.number(), v.number()]);
const stageSchema = v.picklist(["bootstrapping", "collecting", "training", "evaluating"]);

const decisionSchema = v.object({
  candidate: v.string(),
  generation: v.number(),
  verdict: v.picklist(["promoted", "rejected"]),
  evidence: v.record(v.string(), v.unknown()),
  at: v.number(),
  cause: v.string(),
});

const runContextSchema = v.object({
  best: v.nullable(modelRefSchema),
  lastGeneration: v.number(),
  paused: v.boolean(),
  newGames: v.number(),
  games: v.optional(v.object({ byEpoch: v.record(v.string(), v.number()), retiredBelow: v.number() })),
  lastTrainingAt: v.nullable(v.number()),
  trainItem: v.nullable(v.string()),
  candidate: v.nullable(modelRefSchema),
  pairs: pentanomialSchema,
  countedItems: v.array(v.string()),
  trainingFailures: v.number(),
  lastDecision: v.nullable(decisionSchema),
});

export const runSummarySchema = v.object({
  name: v.string(),
  stage: stageSchema,
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
  stage: stageSchema,
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
  id: v.string(),
  run: v.string(),
  generation: v.number(),
  parent: v.nullable(v.string()),
  itemId: v.nullable(v.string()),
  node: v.nullable(v.string()),
  file: v.string(),
  state: v.picklist(["candidate", "evaluating", "promoted", "rejected", "archived"]),
  /** What the training reported (losses, samples). */
  metrics: v.unknown(),
  createdAt: v.number(),
  decidedAt: v.nullable(v.number()),
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

const gamesSchema = v.object({ wins: v.number(), draws: v.number(), losses: v.number() });

export const evaluationSchema = v.object({
  id: v.string(),
  run: v.string(),
  kind: v.picklist(["abtest", "tournament"]),
  players: v.array(v.string()),
  params: v.record(v.string(), v.unknown()),
  state: v.picklist(["running", "done", "cancelled"]),
  results: v.object({ pairs: v.optional(pentanomialSchema), games: v.optional(v.record(v.string(), gamesSchema)) }),
  counted: v.array(v.string()),
  outcome: v.unknown(),
  cause: v.nullable(v.string()),
  createdAt: v.number(),
  updatedAt: v.number(),
});

/** An evaluation as listed: its counted match items as a number, a tournament's standings. */
export const evaluationViewSchema = v.object({
  ...evaluationSchema.entries,
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
