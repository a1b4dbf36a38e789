import * as v from "valibot";
import { intIn } from "../net/bounds.ts";
import { sha256Schema as sha256Hex } from "../sync/model.ts";

/**
 * What a run's work item carries in its config beside the stage's parameters: the run, the stage, the
 * generation, a seed, and the models it reads by id (SHA-256). The worker turns ids into local files and adds
 * the folders (docs/JOBS.md, section 4); the replicated state reads the result back by the same fields.
 */
export const RUN_ITEM_STAGES = ["bootstrap", "selfplay", "train", "match"] as const;
export type RunItemStage = (typeof RUN_ITEM_STAGES)[number];

const playerSchema = v.union([sha256Hex, v.pipe(v.string(), v.regex(/^(random|mcts:[1-9][0-9]{0,5})$/))]);

export const runItemSchema = v.object({
  run: v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/)),
  stage: v.picklist(RUN_ITEM_STAGES),
  generation: intIn(0, 1_000_000_000),
  seed: intIn(0, 2 ** 31 - 1),
  /** selfplay and train: the model played or trained from. */
  model: v.optional(sha256Hex),
  /** selfplay: the run's trainings queued so far when it was queued; its games go to that numbered folder. */
  epoch: v.optional(intIn(0, 1_000_000_000)),
  /** match: the model under test and its opponent (a model or a baseline). */
  candidate: v.optional(sha256Hex),
  opponent: v.optional(playerSchema),
  /** match: whether its pairs count for the gate (false: a baseline game for the Elo table only). */
  gate: v.optional(v.boolean()),
  /** match: the A/B test or tournament it is part of. */
  eval: v.optional(v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9._-]{0,63}$/))),
});

export type RunItem = v.InferOutput<typeof runItemSchema>;

/** The run fields of an item's config, or null when it is not a run's item. */
export function runItemOf(config: unknown): RunItem | null {
  if (config === null || typeof config !== "object" || !("run" in config) || !("stage" in config)) return null;
  const parsed = v.safeParse(runItemSchema, config);
  return parsed.success ? parsed.output : null;
}

const count = intIn(0, 1_000_000_000);

/** What each stage must print (the worker adds `modelId` and `modelFile` for stages that write a model). */
export const stageResultSchemas = {
  selfplay: v.object({ games: count, positions: count }),
  model: v.object({
    model: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)),
  }),
  published: v.object({
    modelId: sha256Hex,
    modelFile: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)),
  }),
  match: v.pipe(
    v.object({
      wins: count,
      draws: count,
      losses: count,
      pairs: v.tuple([count, count, count, count, count]),
    }),
    v.check(
      (r) => 2 * r.pairs.reduce((a, b) => a + b, 0) === r.wins + r.draws + r.losses,
      "pairs counting half the games (2 * (c0 + ... + c4) = wins + draws + losses)",
    ),
  ),
};

/** The first thing wrong with a stage's result, as "field: expected ..., found ...", or null. */
export function resultProblem(schema: v.GenericSchema, result: unknown): string | null {
  const parsed = v.safeParse(schema, result);
  if (parsed.success) return null;
  const issue = parsed.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join(".") ?? "";
  return `the result line ${path ? `field "${path}"` : ""}: expected ${issue.expected ?? issue.message}, found ${issue.received}`;
}
