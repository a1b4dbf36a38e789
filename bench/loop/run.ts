/**
 * The training loop's own overhead and the gate's cost.
 *
 * 1. Gate: the SPRT's average games against a fixed-size match with the same error rates (simulated game pairs at
 *    several true Elo differences), both measured here.
 * 2. Loop: a 3-node cluster of the compiled binary runs the demo workload until `--decisions` gates have decided;
 *    from the replicated history (read from a voter's database afterwards): "candidate written" (the training
 *    item completed) to the first gate match started, and "promoted" to every self-playing node running the new
 *    best. Target: at most 2 s plus the model's transfer time, whose anchor is rsync copying the same model file
 *    in this run.
 *   bun bench/loop/run.ts [--decisions 3] [--only gate|loop]
 */
import { Database } from "bun:sqlite";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { logisticScore } from "../../src/eval/llr.ts";
import { normalCdf } from "../../src/eval/normal.ts";
import { simulateSprt } from "../../src/eval/sprt-simulation.ts";
import { demoRunToml } from "../../tests/integration/demo-run.ts";
import { requireBinary, TestCluster, waitFor } from "../../tests/integration/harness.ts";
import { seededRandom } from "../../tests/sim/rng.ts";
import { median } from "../lib.ts";

const { values } = parseArgs({
  options: { decisions: { type: "string", default: "3" }, only: { type: "string" } },
});

const BOUNDS = { elo0: 0, elo1: 50, alpha: 0.05, beta: 0.05 };
const DRAW_RATE = 0.1;

/** The z with normalCdf(z) = p, by bisection. */
function inverseNormalCdf(p: number): number {
  let lo = -10;
  let hi = 10;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Games a fixed-size match needs for the SPRT's error rates: a one-sided z-test at the midpoint between elo0 and elo1. */
function fixedSizeGames(): number {
  const s0 = logisticScore(BOUNDS.elo0);
  const s1 = logisticScore(BOUNDS.elo1);
  const mid = (s0 + s1) / 2;
  const variance = mid * (1 - mid) - DRAW_RATE / 4; // a draw scores 1/2: it removes a quarter of its share
  const z = inverseNormalCdf(1 - BOUNDS.alpha) + inverseNormalCdf(1 - BOUNDS.beta);
  return 2 * Math.ceil(((z * Math.sqrt(variance)) / (s1 - s0)) ** 2 / 2);
}

function gateBench(): void {
  const fixed = fixedSizeGames();
  console.log(
    `gate: GSPRT elo0 ${BOUNDS.elo0} elo1 ${BOUNDS.elo1} alpha ${BOUNDS.alpha} beta ${BOUNDS.beta}, draws ${DRAW_RATE * 100}%`,
  );
  console.log(`      anchor: a fixed-size match with the same error rates plays ${fixed} games`);
  console.log("      true Elo   SPRT pass   SPRT avg games   fixed pass   ratio (SPRT/fixed games)");
  for (const trueElo of [-25, 0, 25, 50, 75, 100]) {
    const random = seededRandom(1_000 + trueElo);
    const sim = { trueElo, drawRate: DRAW_RATE, bounds: BOUNDS, runs: 400, batchPairs: 4, random };
    const sprt = simulateSprt({ ...sim, maxPairs: 100_000 });
    const fixedPass = fixedMatchPassRate(trueElo, fixed, seededRandom(2_000 + trueElo));
    console.log(
      `      ${String(trueElo).padStart(8)}   ${pct(sprt.passRate).padStart(9)}   ${sprt.averageGames.toFixed(0).padStart(14)}   ${pct(fixedPass).padStart(10)}   ${(sprt.averageGames / fixed).toFixed(2)}x`,
    );
  }
}

/** How often a fixed match of `games` passes (mean score above the midpoint) at a true Elo difference. */
function fixedMatchPassRate(trueElo: number, games: number, random: () => number): number {
  const score = logisticScore(trueElo);
  const draw = Math.min(DRAW_RATE, 2 * Math.min(score, 1 - score));
  const win = score - draw / 2;
  const mid = (logisticScore(BOUNDS.elo0) + logisticScore(BOUNDS.elo1)) / 2;
  let passed = 0;
  const runs = 400;
  for (let r = 0; r < runs; r++) {
    let points = 0;
    for (let g = 0; g < games; g++) {
      const x = random();
      points += x < win ? 1 : x < win + draw ? 0.5 : 0;
    }
    if (points / games > mid) passed++;
  }
  return passed / runs;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

async function loopBench(decisions: number): Promise<void> {
  requireBinary();
  const cluster = new TestCluster(3, {
    voters: 3,
    capabilities: () => ["bootstrap", "selfplay", "train", "match"],
    // One job per node on this 2-core machine: more leaves nodes holding back claims for load.
    slots: () => 1,
    extraToml: demoRunToml(),
  });
  try {
    cluster.startAll();
    const started = Date.now();
    await waitFor(
      async () => {
        const { history } = (await cluster.get("n1", "/runs/c4/history?limit=10000")) as {
          history: { event: string }[];
        };
        return history.filter((h) => h.event === "decided").length >= decisions;
      },
      600_000,
      `${decisions} gate decisions`,
    );
    console.log(`loop: ${decisions} decisions in ${((Date.now() - started) / 1000).toFixed(0)} s (3 nodes, 2 cores)`);
    for (const n of cluster.nodes) await cluster.kill(n.id, "SIGTERM");
    report(cluster);
  } finally {
    await cluster.stop();
  }
}

interface Row {
  item_id: string;
  result: string | null;
  to_state: string;
  node: string | null;
  at: number;
  config: string;
}

function report(cluster: TestCluster): void {
  const db = new Database(join(cluster.dir, ".data", "n1", "state.db"), { readonly: true });
  const rows = db
    .prepare(
      `SELECT h.item_id, h.to_state, h.node, h.at, w.config, json_extract(w.context, '$.result') AS result FROM work_history h JOIN work_items w ON w.id = h.item_id
       WHERE json_extract(w.config, '$.run') = 'c4' ORDER BY h.seq`,
    )
    .all() as Row[];
  const runHistory = db.prepare("SELECT event, at, detail FROM run_history WHERE run = 'c4' ORDER BY seq").all() as {
    event: string;
    at: number;
    detail: string | null;
  }[];
  db.close();
  const stage = (r: Row) =>
    JSON.parse(r.config) as { stage: string; generation: number; model?: string; gate?: boolean };

  // A job's process starts once its lease is taken (the "running" row) and the models it reads are on its node
  // (data sync's "synced" log line there; a model the node wrote itself is there at once).
  const arrived = modelArrivals(cluster);
  const startOf = (r: Row, model: string) => Math.max(r.at, r.node ? (arrived.get(`${r.node} ${model}`) ?? 0) : 0);

  // Candidate written (its training completed) -> the first gate match of that generation started.
  const toMatch: number[] = [];
  for (const done of rows.filter((r) => stage(r).stage === "train" && r.to_state === "completed")) {
    const { generation } = stage(done);
    const candidate = (JSON.parse(done.result ?? "{}") as { modelId?: string }).modelId ?? "";
    const starts = rows
      .filter(
        (r) =>
          r.to_state === "running" &&
          stage(r).stage === "match" &&
          stage(r).gate === true &&
          stage(r).generation === generation,
      )
      .map((r) => startOf(r, candidate));
    if (starts.length > 0) toMatch.push(Math.min(...starts) - done.at);
  }
  // Promoted -> the first self-play of the new best started; and no self-play of the old best started after it.
  const toSelfplay: number[] = [];
  let staleStarts = 0;
  for (const decided of runHistory.filter((h) => h.event === "decided")) {
    const detail = JSON.parse(decided.detail ?? "{}") as { candidate?: string; verdict?: string };
    if (detail.verdict !== "promoted" || !detail.candidate) continue;
    const model = detail.candidate;
    const starts = rows
      .filter((r) => r.to_state === "running" && stage(r).stage === "selfplay" && stage(r).model === model)
      .map((r) => startOf(r, model));
    if (starts.length > 0) toSelfplay.push(Math.min(...starts) - decided.at);
    const next = runHistory.find((h) => h.event === "decided" && h.at > decided.at)?.at ?? Number.POSITIVE_INFINITY;
    staleStarts += rows.filter(
      (r) =>
        r.to_state === "running" &&
        stage(r).stage === "selfplay" &&
        stage(r).model !== model &&
        r.at > decided.at + 50 &&
        r.at < next,
    ).length;
  }
  const transfer = rsyncModelMs(cluster);
  const target = 2_000 + transfer;
  const line = (label: string, xs: number[]) =>
    xs.length === 0
      ? `      ${label}: no sample`
      : `      ${label}: median ${median(xs).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms over ${xs.length}; target ${target.toFixed(0)} ms (2 s + rsync ${transfer.toFixed(0)} ms): ${(median(xs) / target).toFixed(2)}x ${Math.max(...xs) <= target ? "met" : "NOT met"}`;
  console.log(line("candidate written -> first gate match running", toMatch));
  console.log(line("promoted -> first self-play of the new best started", toSelfplay));
  console.log(`      self-play of an older best started after a promotion: ${staleStarts} (target 0)`);
}

/** When each node received each model by data sync, from its log ("synced" lines of the models category). */
function modelArrivals(cluster: TestCluster): Map<string, number> {
  const arrived = new Map<string, number>();
  for (const n of cluster.nodes) {
    for (const line of readFileSync(n.logFile, "utf8").split("\n")) {
      if (!line.includes('"msg":"synced"') || !line.includes('"category":"models"')) continue;
      const entry = JSON.parse(line) as { t: string; path: string };
      const sha = /-([0-9a-f]{64})\./.exec(entry.path)?.[1];
      if (sha) arrived.set(`${n.id} ${sha}`, Date.parse(entry.t));
    }
  }
  return arrived;
}

/** The anchor for a model's transfer: rsync copying the largest model file between two local folders. */
function rsyncModelMs(cluster: TestCluster): number {
  const folder = join(cluster.dir, ".data", "n1", "models", "c4");
  const file = readdirSync(folder)
    .map((n) => join(folder, n))
    .sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (!file) return 0;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const copy = Bun.spawnSync(["rsync", "-a", "--whole-file", file, join(cluster.dir, `copy-${i}.model`)]);
    if (copy.exitCode !== 0) throw new Error(`rsync failed: ${copy.stderr.toString()} (apt-get install -y rsync)`);
    times.push(performance.now() - t0);
  }
  return median(times);
}

if (values.only !== "loop") gateBench();
if (values.only !== "gate") await loopBench(Number(values.decisions));
