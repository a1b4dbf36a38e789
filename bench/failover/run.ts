/**
 * Leader-failover benchmark: 3 voters, kill -9 the leader, time until a write through a survivor is
 * committed (a new leader exists and commits). Our binary is measured beside etcd 3.4 (default
 * timings), the same way, in the same run.
 *
 *   bun bench/failover/run.ts [--trials 10] [--only ours|etcd]
 *   P2P_BIN=path/to/p2p-orchestrator overrides dist/p2p-orchestrator.
 */
import { parseArgs } from "node:util";
import { cleanupAll, installCleanup, median, seconds } from "../lib.ts";
import { measureFailover, type RaftSystem } from "./cluster.ts";
import { etcd } from "./etcd.ts";
import { ours } from "./ours.ts";

function options() {
  const { values } = parseArgs({
    options: {
      trials: { type: "string", default: "10" },
      only: { type: "string" },
    },
  });
  const trials = Number(values.trials);
  if (!Number.isInteger(trials) || trials < 1 || trials > 100) throw new Error("--trials: an integer from 1 to 100");
  if (values.only !== undefined && values.only !== "ours" && values.only !== "etcd") {
    throw new Error("--only: ours or etcd");
  }
  return { trials, only: values.only };
}

async function main(): Promise<number> {
  const { trials, only } = options();
  const systems: RaftSystem[] = [];
  if (only !== "etcd") systems.push(ours);
  if (only !== "ours") systems.push(etcd);
  const missing = await Promise.all(systems.map((s) => s.missing()));
  for (const m of missing) if (m) console.error(`failover: ${m}`);
  if (missing.some((m) => m !== null)) return 1;

  installCleanup();
  console.log(`failover: 3 voters, kill -9 the leader, until a survivor commits a write (${trials} trials each)`);
  const results = new Map<RaftSystem, number[]>(systems.map((s) => [s, []]));
  const width = Math.max("ratio (ours/etcd)".length, ...systems.map((s) => s.label.length)) + 2;

  // Interleaved, so drift in machine load touches both systems alike.
  for (let t = 0; t < trials; t++) {
    for (const system of systems) {
      const cluster = await system.start(t);
      try {
        const f = await measureFailover(cluster);
        results.get(system)?.push(f.ms);
        console.log(
          `${system.label.padEnd(width)}trial ${t + 1}/${trials}: ${seconds(f.ms)}  (killed member ${f.victim + 1})`,
        );
      } finally {
        await cluster.stop();
      }
    }
  }

  const col = (s: string) => s.padStart(9);
  console.log(`\n${"system".padEnd(width)}${col("median")}${col("min")}${col("max")}`);
  for (const [system, xs] of results) {
    const cells = [median(xs), Math.min(...xs), Math.max(...xs)].map((ms) => col(seconds(ms)));
    console.log(`${system.label.padEnd(width)}${cells.join("")}`);
  }
  const o = results.get(ours) ?? [];
  const e = results.get(etcd) ?? [];
  if (o.length > 0 && e.length > 0) {
    const ratio = (a: number, b: number) => col((a / b).toFixed(2));
    console.log(
      `${"ratio (ours/etcd)".padEnd(width)}${ratio(median(o), median(e))}${col("")}${ratio(Math.max(...o), Math.max(...e))}  (lower is better; target: median <= 1.00)`,
    );
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  console.error(`failover: ${e instanceof Error ? e.message : e}`);
  process.exitCode = 1;
} finally {
  cleanupAll();
}
