/**
 * A cluster file's job templates, data categories and run "c4" for the built-in demo workload, sized for tests and
 * benchmarks on a 2-core machine (small searches, short gates). `gate` replaces the run's gate table.
 */
export function demoRunToml(opts: { gate?: string; trainAfterGames?: number } = {}): string {
  const gate = opts.gate ?? "{ elo0 = 0, elo1 = 100, alpha = 0.05, beta = 0.05, max_games = 80, pairs_per_item = 4 }";
  return `
[jobs.bootstrap]
command = ["p2p-orchestrator", "demo", "init", "--out", "{output_dir}", "--seed", "{seed}"]
timeout = "2m"
slots = 1

[jobs.selfplay]
command = ["p2p-orchestrator", "demo", "selfplay", "--model", "{model}", "--games", "{games}", "--out", "{output_dir}", "--seed", "{seed}"]
timeout = "5m"
slots = 1

[jobs.train]
command = ["p2p-orchestrator", "demo", "train", "--games", "{games_dir}", "--from", "{model}", "--out", "{output_dir}", "--window", "{window}", "--seed", "{seed}"]
timeout = "5m"
slots = 1

[jobs.match]
command = ["p2p-orchestrator", "demo", "match", "--a", "{candidate}", "--b", "{opponent}", "--games", "{games}", "--seed", "{seed}"]
timeout = "5m"
slots = 1

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
train_after_games = ${opts.trainAfterGames ?? 200}
window_games = 2000
gate = ${gate}
baselines = ["random"]
baseline_share = 0.1
params.selfplay = { sims = 24 }
params.train = { steps = 200 }
params.match = { sims = 24 }
`;
}
