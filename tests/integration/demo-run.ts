import { DEMO_JOBS } from "../../src/cli/init.ts";

/**
 * A cluster file's job templates (the shipped ones), data categories and run "c4" for the built-in demo workload,
 * sized for tests and benchmarks on a 2-core machine (small searches, short gates).
 */
export function demoRunToml(opts: { keepGames?: number } = {}): string {
  // A test of retention keeps as few games as a training reads, so old epochs retire within its time.
  const window = opts.keepGames ?? 2000;
  const keep = opts.keepGames ?? 100_000;
  return `
${DEMO_JOBS}
[data.games]
path = ".data/{id}/games"
globs = ["**/*.jsonl"]
to = ["train"]

[data.models]
path = ".data/{id}/models"
globs = ["**/*.model"]
to = "all"
swarm = true
stagger = "200ms"

[runs.c4]
bootstrap = { command = "bootstrap" }
selfplay_games = 20
train_after_games = 200
window_games = ${window}
keep_games = ${keep}
gate = { elo0 = 0, elo1 = 100, alpha = 0.05, beta = 0.05, max_games = 80, pairs_per_item = 4 }
baselines = ["random"]
baseline_share = 0.1
params.selfplay = { sims = 24 }
params.train = { steps = 200 }
params.match = { sims = 24 }
`;
}
