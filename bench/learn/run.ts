/**
 * Does the shipped loop learn? The newcomer's cluster (`exampleClusterToml`, the file `npm run local` runs: 3 nodes,
 * the demo workload, run c4) runs for `--minutes` (default 15) on this machine; then:
 * - strength of the final best at 100 simulations over `--games` games (default 200) against `random` (target
 *   >= 99%) and `mcts:200` (target >= 75%);
 * - the Elo of each promoted generation, in order (target: rising over >= 5 promotions);
 * - self-play games/min and training samples/s, beside the anchor: the same `demo selfplay` run alone, one process
 *   per core, in this run (the ratio is what the orchestration keeps of the machine);
 * - the share of job-slot time spent running jobs (target >= 90%), and of the machine's CPU time spent busy.
 *   bun bench/learn/run.ts [--minutes 15] [--games 200]
 */
import { Database } from "bun:sqlite";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureSecrets, exampleClusterToml } from "../../src/cli/init.ts";
import { BIN, requireBinary } from "../../tests/integration/harness.ts";
import { installCleanup, makeTempDir, median, sleep } from "../lib.ts";

const { values } = parseArgs({
  options: { minutes: { type: "string", default: "15" }, games: { type: "string", default: "200" } },
});
const minutes = Number(values.minutes);
const games = Number(values.games);

/** Runs a demo command to its result line. */
async function demo(args: string[], cwd: string): Promise<Record<string, unknown>> {
  const child = Bun.spawn([BIN, "demo", ...args], { cwd, stdout: "pipe", stderr: "ignore" });
  const [out, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
  if (code !== 0) throw new Error(`demo ${args.join(" ")} exited ${code}`);
  return JSON.parse(out.trimEnd().split("\n").pop() ?? "{}") as Record<string, unknown>;
}

async function anchorSelfplay(dir: string): Promise<number> {
  await demo(["init", "--out", join(dir, "anchor.model"), "--seed", "1"], dir);
  const cores = availableParallelism();
  const runs = await Promise.all(
    Array.from({ length: cores }, (_, i) =>
      demo(
        [
          "selfplay",
          "--model",
          "anchor.model",
          "--games",
          "300",
          "--sims",
          "64",
          "--out",
          `anchor-${i}`,
          "--seed",
          `${i}`,
        ],
        dir,
      ),
    ),
  );
  return runs.reduce((a, r) => a + Number(r.gamesPerMinute), 0);
}

interface Rating {
  id: string;
  elo: number;
  low: number;
  high: number;
  generation: number | null;
  state: string;
}

async function main(): Promise<void> {
  requireBinary();
  installCleanup();
  const dir = makeTempDir("p2p-learn-");
  const anchor = await anchorSelfplay(dir);
  console.log(
    `anchor: demo selfplay alone, one process per core (${availableParallelism()}): ${anchor.toFixed(0)} games/min at 64 sims`,
  );

  const port = 30_000 + Math.floor(Math.random() * 20_000);
  const config = join(dir, "cluster.toml");
  await Bun.write(config, exampleClusterToml(3, port));
  ensureSecrets(config);
  const token = (await Bun.file(join(dir, "operator.token")).text()).trim();
  const up = Bun.spawn([BIN, "up", "--config", config], { cwd: dir, stdout: "ignore", stderr: "ignore" });
  const url = (n: number) => `http://127.0.0.1:${port + n}`;
  const get = async (path: string, n = 1): Promise<unknown> => {
    const res = await fetch(`${url(n)}${path}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
    return res.json();
  };
  const started = Date.now();
  const cpuBefore = cpuTimes();
  let elo: { ratings: Rating[] } = { ratings: [] };
  try {
    while (Date.now() - started < minutes * 60_000) {
      await sleep(30_000);
      try {
        const run = (await get("/runs/c4")) as {
          stage: string;
          why: string;
          context: { best: { generation: number } | null };
        };
        elo = (await get("/runs/c4/elo")) as { ratings: Rating[] };
        const best = elo.ratings.find((r) => r.generation === run.context.best?.generation && r.state === "promoted");
        console.log(
          `  ${((Date.now() - started) / 60_000).toFixed(1)} min: best generation ${run.context.best?.generation ?? "-"} (Elo ${best ? best.elo.toFixed(0) : "-"}), ${run.stage}: ${run.why}`,
        );
      } catch (e) {
        console.log(`  (no answer: ${(e as Error).message})`);
      }
    }
  } finally {
    up.kill("SIGTERM");
    await Promise.race([up.exited, sleep(20_000)]);
    up.kill("SIGKILL");
  }
  const wallMs = Date.now() - started;
  const cpu = cpuTimes();
  const busyShare = (cpu.busy - cpuBefore.busy) / (cpu.total - cpuBefore.total);
  console.log(`CPU busy over the run: ${(100 * busyShare).toFixed(1)}% of ${availableParallelism()} cores`);
  report(dir, wallMs, elo.ratings);
  await strength(dir);
}

function report(dir: string, wallMs: number, ratings: Rating[]): void {
  const db = new Database(join(dir, ".data", "n1", "state.db"), { readonly: true });
  learningCurve(db, ratings);
  const promoted = ratings
    .filter((r) => r.state === "promoted" && r.generation !== null)
    .sort((a, b) => (a.generation ?? 0) - (b.generation ?? 0));
  console.log(`promotions: ${promoted.length - 1} (generations ${promoted.map((r) => r.generation).join(", ")})`);
  console.log(
    `  Elo of each promoted generation: ${promoted.map((r) => `g${r.generation} ${r.elo.toFixed(0)} [${r.low.toFixed(0)}, ${r.high.toFixed(0)}]`).join(", ")}`,
  );
  const rising = promoted.every((r, i) => i === 0 || r.elo > (promoted[i - 1]?.elo ?? 0));
  console.log(`  rising over >= 5 promotions: ${promoted.length - 1 >= 5 && rising ? "met" : "NOT met"}`);
  for (const b of ratings.filter((r) => r.state === "baseline"))
    console.log(`  baseline ${b.id}: ${b.elo.toFixed(0)} [${b.low.toFixed(0)}, ${b.high.toFixed(0)}]`);

  const results = db
    .prepare(
      "SELECT json_extract(config, '$.stage') AS stage, json_extract(context, '$.result') AS result FROM work_items WHERE state = 'completed'",
    )
    .all() as { stage: string; result: string }[];
  const selfplayGames = results
    .filter((r) => r.stage === "selfplay")
    .reduce((a, r) => a + Number(JSON.parse(r.result).games ?? 0), 0);
  const samplesPerSecond = results
    .filter((r) => r.stage === "train")
    .map((r) => Number(JSON.parse(r.result).samplesPerSecond ?? 0));
  console.log(
    `self-play: ${((selfplayGames * 60_000) / wallMs).toFixed(0)} games/min over the run (${selfplayGames} games, while also training and gating)`,
  );
  const sims = results
    .filter((r) => r.stage === "selfplay")
    .map((r) => Number(JSON.parse(r.result).simsPerSecond ?? 0));
  console.log(
    `self-play search: median ${(sims.length ? median(sims) : 0).toFixed(0)} simulations/s per job (each on one core, shared)`,
  );
  console.log(
    `training: ${samplesPerSecond.length} trainings, median ${(samplesPerSecond.length ? median(samplesPerSecond) : 0).toFixed(0)} samples/s`,
  );

  // Slot time: each attempt from running to its end, over every node's slots for the wall time.
  const spans = db.prepare(`SELECT h.item_id, h.to_state, h.at FROM work_history h ORDER BY h.seq`).all() as {
    item_id: string;
    to_state: string;
    at: number;
  }[];
  const since = new Map<string, number>();
  let busy = 0;
  for (const s of spans) {
    if (s.to_state === "running") since.set(s.item_id, s.at);
    else if (since.has(s.item_id)) {
      busy += s.at - (since.get(s.item_id) ?? s.at);
      since.delete(s.item_id);
    }
  }
  const slots = 3 * availableParallelism();
  console.log(
    `slots busy: ${((100 * busy) / (slots * wallMs)).toFixed(1)}% of ${slots} slots over ${(wallMs / 60_000).toFixed(1)} min (target >= 90%)`,
  );
  db.close();
}

/** Per generation: games its training read, its losses, its Elo, and its gate's result. */
function learningCurve(db: Database, ratings: Rating[]): void {
  const models = db.prepare("SELECT id, generation, state, metrics FROM models ORDER BY generation").all() as {
    id: string;
    generation: number;
    state: string;
    metrics: string | null;
  }[];
  const decided = new Map<string, { games: number; pairs: number[]; llr: number }>();
  for (const row of db.prepare("SELECT detail FROM run_history WHERE event = 'decided'").all() as {
    detail: string;
  }[]) {
    const d = JSON.parse(row.detail) as {
      candidate: string;
      evidence: { games: number; pairs: number[]; llr: number };
    };
    decided.set(d.candidate, d.evidence);
  }
  console.log(
    "learning curve: gen  state      games  loss (policy/value)  Elo [95%]            gate (pairs 0..4, LLR)",
  );
  for (const m of models) {
    const metrics = JSON.parse(m.metrics ?? "{}") as { games?: number; loss?: { policy: number; value: number } };
    const r = ratings.find((x) => x.id === m.id);
    const gate = decided.get(m.id);
    console.log(
      `                ${String(m.generation).padStart(3)}  ${m.state.padEnd(9)}  ${String(metrics.games ?? "-").padStart(5)}  ${metrics.loss ? `${metrics.loss.policy.toFixed(3)} / ${metrics.loss.value.toFixed(3)}` : "-".padEnd(15)}      ${r ? `${r.elo.toFixed(0).padStart(5)} [${r.low.toFixed(0)}, ${r.high.toFixed(0)}]`.padEnd(20) : "-".padEnd(20)} ${gate ? `[${gate.pairs.join(" ")}] ${gate.llr.toFixed(2)} over ${gate.games} games` : ""}`,
    );
  }
}

/** The machine's CPU time so far (Linux /proc/stat, in clock ticks): all of it and the part not idle. */
function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: total - idle, total };
}

async function strength(dir: string): Promise<void> {
  const db = new Database(join(dir, ".data", "n1", "state.db"), { readonly: true });
  const run = db.prepare("SELECT context FROM runs WHERE name = 'c4'").get() as { context: string };
  const best = (JSON.parse(run.context) as { best: { id: string } }).best;
  const file = (db.prepare("SELECT file FROM models WHERE id = ?").get(best.id) as { file: string }).file;
  db.close();
  const model = join(dir, ".data", "n1", "models", file);
  const [random, mcts] = await Promise.all(
    ["random", "mcts:200"].map((b) =>
      demo(["match", "--a", model, "--b", b, "--games", String(games), "--sims", "100", "--seed", "7"], dir),
    ),
  );
  const line = (name: string, r: Record<string, unknown>, target: number) =>
    `final best vs ${name} at 100 sims over ${r.games} games: ${(100 * Number(r.score)).toFixed(1)}% (+${r.wins} =${r.draws} -${r.losses}), target >= ${target}%: ${100 * Number(r.score) >= target ? "met" : "NOT met"}`;
  console.log(line("random", random as Record<string, unknown>, 99));
  console.log(line("mcts:200", mcts as Record<string, unknown>, 75));
}

await main();
