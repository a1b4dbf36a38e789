/**
 * Failure-detection benchmark: start N nodes, kill -9 one, time until EVERY survivor marks it dead.
 * Our binary is measured beside Serf (LAN profile), the same way, in the same run.
 *
 *   bun bench/detect/run.ts [--trials 5] [--nodes 10] [--only ours|serf]
 *   P2P_BIN=path/to/p2p-orchestrator overrides dist/p2p-orchestrator.
 */
import { parseArgs } from "node:util";
import { cleanupAll, installCleanup, median, seconds } from "../lib.ts";
import { type Detection, measureDetection, type System, waitConverged } from "./cluster.ts";
import { binMissing, ours } from "./ours.ts";
import { serf, serfMissing } from "./serf.ts";

function options() {
  const { values } = parseArgs({
    options: {
      trials: { type: "string", default: "5" },
      nodes: { type: "string", default: "10" },
      only: { type: "string" },
    },
  });
  const trials = Number(values.trials);
  const nodes = Number(values.nodes);
  if (!Number.isInteger(trials) || trials < 1 || trials > 100) throw new Error("--trials: an integer from 1 to 100");
  if (!Number.isInteger(nodes) || nodes < 3 || nodes > 200) throw new Error("--nodes: an integer from 3 to 200");
  if (values.only !== undefined && values.only !== "ours" && values.only !== "serf") {
    throw new Error("--only: ours or serf");
  }
  return { trials, nodes, only: values.only };
}

/** One trial: a fresh cluster, converge, kill a non-seed member, measure, tear down. */
async function trial(system: System, nodes: number, t: number): Promise<Detection> {
  const cluster = await system.start(nodes, t);
  try {
    await waitConverged(cluster);
    const victim = 1 + (t % (nodes - 1));
    return await measureDetection(cluster, victim);
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<number> {
  const { trials, nodes, only } = options();
  const systems: System[] = [];
  if (only !== "serf") systems.push(ours);
  if (only !== "ours") systems.push(serf);
  const missing = [only !== "serf" ? await binMissing() : null, only !== "ours" ? serfMissing() : null];
  for (const m of missing) if (m) console.error(`detect: ${m}`);
  if (missing.some((m) => m !== null)) return 1;

  installCleanup();
  console.log(`detect: ${nodes} nodes, kill -9 one, until every survivor marks it dead (${trials} trials each)`);
  const results = new Map<System, number[]>(systems.map((s) => [s, []]));
  const width = Math.max("ratio (ours/serf)".length, ...systems.map((s) => s.label.length)) + 2;
  for (const system of systems) console.log(`${system.label.padEnd(width)}${system.timing(nodes)}`);

  // Interleaved, so drift in machine load touches both systems alike.
  for (let t = 0; t < trials; t++) {
    for (const system of systems) {
      const d = await trial(system, nodes, t);
      results.get(system)?.push(d.allMs);
      console.log(
        `${system.label.padEnd(width)}trial ${t + 1}/${trials}: all ${seconds(d.allMs)}  (first ${seconds(d.firstMs)})`,
      );
    }
  }

  const col = (s: string) => s.padStart(9);
  console.log(`\n${"system".padEnd(width)}${col("median")}${col("min")}${col("max")}`);
  for (const [system, xs] of results) {
    const cells = [median(xs), Math.min(...xs), Math.max(...xs)].map((ms) => col(seconds(ms)));
    console.log(`${system.label.padEnd(width)}${cells.join("")}`);
  }
  const ourMedian = median(results.get(ours) ?? []);
  const serfMedian = median(results.get(serf) ?? []);
  if (Number.isFinite(ourMedian) && Number.isFinite(serfMedian)) {
    console.log(`${"ratio (ours/serf)".padEnd(width)}${col((ourMedian / serfMedian).toFixed(2))}  (lower is better)`);
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  console.error(`detect: ${e instanceof Error ? e.message : e}`);
  process.exitCode = 1;
} finally {
  cleanupAll();
}
