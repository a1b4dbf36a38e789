import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { defineCommand } from "citty";
import { parseClusterFile } from "../config/load.ts";

/**
 * The example cluster file `init` writes (and the shipped cluster.toml): `nodes` local nodes and, unless
 * `workload` is false, the built-in demo workload's job templates and a training run over them.
 */
export function exampleClusterToml(nodes: number, basePort: number, { workload = true } = {}): string {
  const entries = Array.from(
    { length: nodes },
    (_, i) => `[[nodes]]
id = "n${i + 1}"
address = "127.0.0.1:${basePort + i + 1}"   # where the others reach it (default port 8770)
voter = ${i < 3}                          # may vote and lead (a majority of configured voters is quorum)
capabilities = ["bootstrap", "selfplay", "train", "match"]   # the job types it runs
# slots = 4                               # job slots (default: CPU count)
# data_dir = "/var/lib/p2p/n${i + 1}"        # overrides cluster.data_dir
# listen = "0.0.0.0:${basePort + i + 1}"        # bind address, if not the host of address
# nat = false                             # behind NAT: others cannot reach it directly
`,
  ).join("\n");
  return `# p2p-orchestrator cluster file: copy the same file to every node.
# Start a node:   p2p-orchestrator start --config cluster.toml --node n1
# Local cluster:  p2p-orchestrator up --config cluster.toml
# Flags and P2P_* environment variables (P2P_NODE, P2P_DATA_DIR, P2P_ADDRESS, P2P_LISTEN,
# P2P_SEEDS, P2P_TIMING, P2P_LOG_LEVEL) override what is written here.

[cluster]
name = "local"
secret_file = "cluster.secret"      # shared HMAC key for node-to-node traffic (relative to this file)
token_file = "operator.token"       # bearer token for operators, the CLI and dashboards
timing = "lan"                      # "lan" (failures seen in seconds) or "wan" (slower, tolerant of latency)
data_dir = ".data/{id}"             # per-node state; {id} is the node id
log_level = "info"
# seeds = ["10.0.0.1:8770"]         # where to look for the cluster (default: every node listed below)

[work]
soft_limit = 10000                  # queued items past this are reported as high backpressure
hard_limit = 50000                  # past this, submissions get 429 with Retry-After
# lease = "30s"                     # how long a claim holds an item without a heartbeat (default: from timing)
# keep_finished = 20000             # finished items kept with their history; older ones are pruned after an hour

${workload ? WORKLOAD : ""}# Data sync. Each node indexes its folders by category (path, size, SHA-256; hashed off the main thread),
# gossips a digest of each, and pulls what its peers hold that the category's "to" gives it. Transfers
# are verified piece by piece and as a whole, resume after a restart, and draw from several peers.
[sync]
max_transfers = 4                   # transfers this node runs at once
max_uploads = 8                     # requests it serves at once (more get 503 + Retry-After)
# download_rate = "100MB/s"         # per-node bandwidth limits (default unlimited)
# upload_rate = "100MB/s"
disk_max_percent = 90               # refuse a transfer that would fill the disk past this

[data.games]
path = ".data/{id}/games"           # relative to this file; {id} is the node id
globs = ["**/*.jsonl", "**/*.npz"]
to = ["train"]                      # game files go to the nodes that train

[data.models]
path = ".data/{id}/models"
globs = ["**/*.model", "**/*.pt", "**/*.pth", "**/*.onnx"]
to = "all"                          # every node gets every model
swarm = true                        # nodes that have pieces serve them: the origin sends about one copy
stagger = "1s"                      # each node waits its own deterministic share of this before pulling

${entries}`;
}

/** The four job templates that run the built-in demo workload's stages with this binary (docs/JOBS.md, 6). */
export const DEMO_JOBS = `[jobs.bootstrap]
command = ["p2p-orchestrator", "demo", "init", "--out", "{output_dir}", "--seed", "{seed}"]
timeout = "5m"
slots = 1

[jobs.selfplay]
command = ["p2p-orchestrator", "demo", "selfplay", "--model", "{model}", "--games", "{games}", "--out", "{output_dir}", "--seed", "{seed}"]
# command = ["python3", "selfplay.py", "--model", "{model}", "--games", "{games}", "--out", "{output_dir}"]
timeout = "30m"
slots = 1

[jobs.train]
command = ["p2p-orchestrator", "demo", "train", "--games", "{games_dir}", "--from", "{model}", "--out", "{output_dir}", "--window", "{window}", "--seed", "{seed}"]
timeout = "1h"
slots = 1

[jobs.match]
command = ["p2p-orchestrator", "demo", "match", "--a", "{candidate}", "--b", "{opponent}", "--games", "{games}", "--seed", "{seed}"]
timeout = "30m"
slots = 1
`;

const WORKLOAD = `# How a node runs each type of work. An argv entry that is exactly "{key}" becomes the item's config
# value as one argument, never split or run as code; "{output_dir}" is the job's own folder. Every config
# value is also in the job's environment as P2P_PARAM_<KEY> (P2P_PARAM_GAMES; objects as JSON), beside
# P2P_WORK_ID, P2P_JOB_TYPE, P2P_ATTEMPT and P2P_OUTPUT_DIR. A shell script reads those variables: a
# "{key}" inside a string or a script is refused when the file loads. The last line the command prints is
# its JSON result (docs/JOBS.md). A node runs the types it has as capabilities. "p2p-orchestrator" as the
# program is this binary: these four run the built-in Connect Four workload; put your own commands here.
${DEMO_JOBS}
# A training run: self-play of the best model, a training every train_after_games new games, the candidate
# gated against the best by a sequential test on game pairs (fishtest's GSPRT), promotion or rejection, and
# an Elo table anchored at generation 0 with fixed baselines. Watch it: p2p-orchestrator runs --follow c4
[runs.c4]
bootstrap = { command = "bootstrap" }   # or { model = "path/to/generation0.model" }
selfplay_games = 100                # games per self-play item
train_after_games = 1000            # new games that trigger the next training
window_games = 6000                 # the newest games a training reads
# keep_games = 100000               # games each node keeps (at least window_games); older epochs are deleted
# keep_models = 50                  # newest generations kept; the best and the candidate always stay
gate = { elo0 = 0, elo1 = 50, alpha = 0.05, beta = 0.05, max_games = 200, pairs_per_item = 10 }   # or gate = "none"
baselines = ["random", "mcts:200"]  # fixed opponents rated in the same Elo fit
baseline_share = 0.05               # the share of evaluation games played against them
# weight = 1                        # this run's share of the self-play slots when several runs share the cluster
# train_cooldown = "30s"            # least time between two trainings
# Extra parameters per stage, given to its jobs as {key} and P2P_PARAM_<KEY>:
params.selfplay = { sims = 64 }
params.train = { steps = 1000 }
params.match = { sims = 64 }

`;

/** Writes a fresh secret or token file, readable by its owner only. Returns false if it already existed. */
export function writeSecretFile(path: string, bytes: number): boolean {
  if (existsSync(path)) return false;
  writeFileSync(path, `${randomBytes(bytes).toString("hex")}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return true;
}

/** Creates whichever of the cluster file's secret and token files are missing. */
export function ensureSecrets(configPath: string): string[] {
  const file = parseClusterFile(configPath);
  const base = dirname(resolve(configPath));
  const at = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const created: string[] = [];
  if (writeSecretFile(at(file.cluster.secret_file), 32)) created.push(at(file.cluster.secret_file));
  if (writeSecretFile(at(file.cluster.token_file), 24)) created.push(at(file.cluster.token_file));
  return created;
}

export const initCommand = defineCommand({
  meta: { name: "init", description: "Write a commented cluster.toml and fresh secret and token files (mode 600)" },
  args: {
    config: { type: "string", description: "Where to write the cluster file", default: "cluster.toml" },
    nodes: { type: "string", description: "How many local example nodes", default: "3" },
    port: { type: "string", description: "Base port (nodes use port+1, port+2, ...)", default: "8770" },
    force: { type: "boolean", description: "Overwrite an existing cluster file", default: false },
  },
  run({ args }) {
    const path = resolve(args.config);
    const nodes = Number(args.nodes);
    const port = Number(args.port);
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > 100) throw new Error("--nodes: expected 1..100");
    if (!Number.isInteger(port) || port < 1 || port + nodes > 65535) throw new Error("--port: expected a port");
    if (existsSync(path) && !args.force) {
      console.log(`${path} exists (use --force to overwrite); checking its secret files`);
    } else {
      writeFileSync(path, exampleClusterToml(nodes, port));
      console.log(`wrote ${path}`);
    }
    for (const created of ensureSecrets(path)) console.log(`wrote ${created} (mode 600)`);
  },
});
