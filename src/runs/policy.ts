import * as v from "valibot";
import { durationSchema } from "../config/duration.ts";
import { finiteIn, intIn } from "../net/bounds.ts";

/**
 * A training run's policy, `[runs.<name>]` in cluster.toml: which job templates play each stage (docs/JOBS.md),
 * which data categories hold its games and models, how it starts, when it trains, how a candidate is gated and
 * what it is rated against. Cross-references to [jobs] and [data] are checked by `runPolicyProblems`.
 */

const NAME = /^[a-z][a-z0-9_-]{0,31}$/;
const nameSchema = (what: string) => v.pipe(v.string(), v.regex(NAME, what));
const jobType = nameSchema("a job type of [jobs]");
const category = nameSchema("a data category of [data]");

/** A fixed opponent the Elo table is anchored by: "random", or pure MCTS with N simulations ("mcts:200"). */
export const BASELINE = /^(random|mcts:[1-9][0-9]{0,5})$/;
const baselineSchema = v.pipe(v.string(), v.regex(BASELINE, 'a baseline: "random" or "mcts:<simulations>"'));

/** A parameter value that may stand in a job's argv (docs/JOBS.md, section 1). */
const paramValue = v.union([v.pipe(v.string(), v.maxLength(4096)), finiteIn(-1e15, 1e15), v.boolean()]);
const paramsSchema = v.pipe(
  v.record(v.pipe(v.string(), v.regex(/^[a-z0-9_]{1,64}$/, "a parameter name of [a-z0-9_]")), paramValue),
  v.check((p) => Object.keys(p).length <= 64, "at most 64 parameters"),
);

/** A number of games from 2 to `max`, even: games are played in pairs. */
export const evenGames = (max: number) =>
  v.pipe(
    intIn(2, max),
    v.check((n) => n % 2 === 0, "an even number of games (they are played in pairs)"),
  );

/** Game pairs per match item: the unit of work spread over evaluation nodes. */
export const pairsPerItem = v.optional(intIn(1, 1_000), 4);

/** The sequential test a candidate must pass against the current best (GSPRT on game pairs, logistic Elo). */
export const sprtGateSchema = v.pipe(
  v.strictObject({
    elo0: v.optional(finiteIn(-1000, 1000), 0),
    elo1: v.optional(finiteIn(-1000, 1000), 50),
    alpha: v.optional(finiteIn(0.001, 0.5), 0.05),
    beta: v.optional(finiteIn(0.001, 0.5), 0.05),
    /** Games after which an undecided test stops: the candidate is rejected. Even: games come in pairs. */
    max_games: v.optional(evenGames(100_000), 400),
    pairs_per_item: pairsPerItem,
  }),
  v.forward(
    v.check((g) => g.elo1 > g.elo0, "elo1 greater than elo0"),
    ["elo1"],
  ),
);

export const runPolicySchema = v.strictObject({
  /** This run's share of the cluster's self-play slots against the other runs' weights. */
  weight: v.optional(finiteIn(0.001, 1_000), 1),
  /** Job types ([jobs.<type>]) that play each stage. */
  selfplay: v.optional(jobType, "selfplay"),
  train: v.optional(jobType, "train"),
  match: v.optional(jobType, "match"),
  /** Data categories ([data.<name>]) of the run's game files and model files. */
  games: v.optional(category, "games"),
  models: v.optional(category, "models"),
  /** Generation 0: a model file (relative to the cluster file), or a job type whose item writes one. */
  bootstrap: v.union([
    v.strictObject({ model: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)) }),
    v.strictObject({ command: jobType }),
  ]),
  /** Games per self-play item. */
  selfplay_games: v.optional(intIn(1, 100_000), 8),
  /** New games since the last training that trigger the next one. */
  train_after_games: v.optional(intIn(1, 100_000_000), 256),
  /** Least time between two trainings of this run. */
  train_cooldown: v.optional(v.union([v.literal(0), durationSchema]), 0),
  /** The newest games a training reads. */
  window_games: v.optional(intIn(1, 100_000_000), 5_000),
  /** "none" adopts every candidate (as KataGo does); otherwise the SPRT gate. */
  gate: v.optional(v.union([v.literal("none"), sprtGateSchema]), {}),
  /** Fixed opponents rated in the same Elo fit, and the share of evaluation games played against them. */
  baselines: v.optional(v.pipe(v.array(baselineSchema), v.maxLength(8)), []),
  baseline_share: v.optional(finiteIn(0, 0.9), 0.2),
  /** Retention: the newest game files and models each node keeps (the best and open candidates always stay). */
  keep_games: v.optional(intIn(100, 1_000_000_000), 100_000),
  keep_models: v.optional(intIn(2, 100_000), 50),
  /** Extra parameters per stage, given to its jobs as {key} and P2P_PARAM_<KEY> (e.g. simulations). */
  params: v.optional(
    v.strictObject({
      selfplay: v.optional(paramsSchema, {}),
      train: v.optional(paramsSchema, {}),
      match: v.optional(paramsSchema, {}),
    }),
    {},
  ),
});

export type RunPolicy = v.InferOutput<typeof runPolicySchema>;
export type Stage = "selfplay" | "train" | "match";
export const STAGES: readonly Stage[] = ["selfplay", "train", "match"];

/** Placeholders the run fills for each stage's jobs (docs/JOBS.md, section 4); "output_dir" the node fills. */
export const RUN_PLACEHOLDERS: Readonly<Record<Stage | "bootstrap", readonly string[]>> = {
  selfplay: ["run", "generation", "seed", "model", "games"],
  train: ["run", "generation", "seed", "model", "games_dir", "window"],
  match: ["run", "generation", "seed", "candidate", "opponent", "games"],
  bootstrap: ["run", "generation", "seed"],
};

const WHOLE_PLACEHOLDER = /^\{([a-z0-9_]{1,64})\}$/;

/** One thing wrong with a run's references, as the config loader reports it. */
export interface PolicyProblem {
  path: string;
  expected: string;
  found: string;
}

/**
 * What a run names that the cluster file lacks: stage job types without a template, data categories not
 * declared, or a template placeholder that neither the run, the node nor the stage's params will fill.
 */
export function runPolicyProblems(
  name: string,
  run: RunPolicy,
  jobs: Readonly<Record<string, { command: readonly string[] }>>,
  categories: readonly string[],
): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const at = (key: string) => `runs.${name}.${key}`;
  const stages: [Stage | "bootstrap", string][] = STAGES.map((s) => [s, run[s]]);
  if ("command" in run.bootstrap) stages.push(["bootstrap", run.bootstrap.command]);
  for (const [stage, type] of stages) {
    const key = stage === "bootstrap" ? "bootstrap.command" : stage;
    const template = jobs[type];
    if (!template) {
      problems.push({ path: at(key), expected: `a job type with a [jobs.${type}] template`, found: `"${type}"` });
      continue;
    }
    const fills = new Set(["output_dir", ...RUN_PLACEHOLDERS[stage], ...Object.keys(paramsOf(run, stage))]);
    for (const arg of template.command) {
      const placeholder = WHOLE_PLACEHOLDER.exec(arg)?.[1];
      if (placeholder === undefined || fills.has(placeholder)) continue;
      problems.push({
        path: at(key),
        expected: `a template whose placeholders the ${stage} stage fills (${[...fills].join(", ")}; add others under [runs.${name}.params.${stage === "bootstrap" ? "selfplay" : stage}])`,
        found: `{${placeholder}} in [jobs.${type}]`,
      });
    }
  }
  if (run.keep_games < run.window_games) {
    problems.push({
      path: at("keep_games"),
      expected: `at least window_games (${run.window_games}): a training reads that many of the kept games`,
      found: String(run.keep_games),
    });
  }
  for (const key of ["games", "models"] as const) {
    if (!categories.includes(run[key])) {
      problems.push({
        path: at(key),
        expected: `a data category with a [data.${run[key]}] table`,
        found: `"${run[key]}"`,
      });
    }
  }
  return problems;
}

function paramsOf(run: RunPolicy, stage: Stage | "bootstrap"): Record<string, unknown> {
  return stage === "bootstrap" ? {} : run.params[stage];
}
