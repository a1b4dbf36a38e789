/**
 * Commit-throughput benchmark: 3 voters, N concurrent proposers writing distinct keys through the
 * leader; committed writes per second and their latency. Our binary is measured beside etcd 3.4's
 * replicated put, the same way, in the same run (one cluster at a time).
 *
 *   bun bench/commit/run.ts [--concurrency 64] [--seconds 10] [--only ours|etcd]
 *   P2P_BIN=path/to/p2p-orchestrator overrides dist/p2p-orchestrator.
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { type RaftCluster, type RaftSystem, stableLeader } from "../failover/cluster.ts";
import { etcd } from "../failover/etcd.ts";
import { ours } from "../failover/ours.ts";
import { cleanupAll, installCleanup, percentile, sleep } from "../lib.ts";

const WARMUP_MS = 1_000;
const REQUEST_TIMEOUT_MS = 5_000;
const LAG_SAMPLE_MS = 1_000;
/** The same 64-byte value for every write, in both systems. */
const VALUE = "v".repeat(64);

function options() {
  const { values } = parseArgs({
    options: {
      concurrency: { type: "string", default: "64" },
      seconds: { type: "string", default: "10" },
      only: { type: "string" },
    },
  });
  const concurrency = Number(values.concurrency);
  const secs = Number(values.seconds);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
    throw new Error("--concurrency: an integer from 1 to 1024");
  }
  if (!Number.isFinite(secs) || secs < 1 || secs > 600) throw new Error("--seconds: a number from 1 to 600");
  if (values.only !== undefined && values.only !== "ours" && values.only !== "etcd") {
    throw new Error("--only: ours or etcd");
  }
  return { concurrency, ms: secs * 1000, only: values.only };
}

interface Load {
  perSecond: number;
  committed: number;
  p50: number;
  p99: number;
  errors: Map<string, number>;
  /** Leader event-loop lag p99 samples (ms), where exposed. */
  lag: number[];
}

/** `concurrency` closed loops writing k<worker>-<n> through `leader`; only writes started after warm-up count. */
async function load(c: RaftCluster, leader: number, concurrency: number, ms: number): Promise<Load> {
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const lag: number[] = [];
  const start = performance.now() + WARMUP_MS;
  const end = start + ms;

  const worker = async (w: number) => {
    for (let n = 0; performance.now() < end; n++) {
      const t0 = performance.now();
      const error = await c.put(leader, `k${w}-${n}`, VALUE, REQUEST_TIMEOUT_MS);
      if (t0 < start) continue;
      if (error === null) latencies.push(performance.now() - t0);
      else errors.set(error, (errors.get(error) ?? 0) + 1);
    }
  };
  const sampleLag = async () => {
    if (!c.eventLoopLagMs) return;
    await sleep(WARMUP_MS);
    while (performance.now() < end) {
      const v = await c.eventLoopLagMs(leader);
      if (v !== null) lag.push(v);
      await sleep(LAG_SAMPLE_MS);
    }
  };

  const workers = Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const lagDone = sampleLag();
  await workers;
  // The window ends with the last worker, not with the lag sampler's final sleep.
  const elapsed = performance.now() - start;
  await lagDone;
  return {
    perSecond: latencies.length / (elapsed / 1000),
    committed: latencies.length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
    lag,
  };
}

async function main(): Promise<number> {
  const { concurrency, ms, only } = options();
  const systems: RaftSystem[] = [];
  if (only !== "etcd") systems.push(ours);
  if (only !== "ours") systems.push(etcd);
  const missing = await Promise.all(systems.map((s) => s.missing()));
  for (const m of missing) if (m) console.error(`commit: ${m}`);
  if (missing.some((m) => m !== null)) return 1;

  installCleanup();
  console.log(
    `commit: 3 voters, ${concurrency} concurrent proposers through the leader, ${ms / 1000} s after ${WARMUP_MS / 1000} s warm-up`,
  );
  console.log(
    `        one cluster at a time; the cluster and this load generator share ${availableParallelism()} CPU cores`,
  );
  const results = new Map<RaftSystem, Load>();
  const width = Math.max("ratio (ours/etcd)".length, ...systems.map((s) => s.label.length)) + 2;

  for (const system of systems) {
    const cluster = await system.start(0);
    try {
      const leader = await stableLeader(cluster);
      const r = await load(cluster, leader, concurrency, ms);
      await cluster.assertRunning();
      results.set(system, r);
      const errors = [...r.errors].map(([what, count]) => `${what} x${count}`).join(", ") || "none";
      console.log(
        `${system.label.padEnd(width)}${Math.round(r.perSecond)}/s committed (${r.committed}), p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms; errors: ${errors}`,
      );
      if (cluster.eventLoopLagMs) {
        const lag =
          r.lag.length > 0 ? `max ${Math.max(...r.lag).toFixed(1)} ms over ${r.lag.length} samples` : "not exposed";
        console.log(`${"".padEnd(width)}leader event-loop lag p99 (p2p_event_loop_lag_p99_ms): ${lag}`);
      }
    } finally {
      await cluster.stop();
    }
  }

  const col = (s: string) => s.padStart(12);
  console.log(`\n${"system".padEnd(width)}${col("commits/s")}${col("p50")}${col("p99")}${col("errors")}`);
  for (const [system, r] of results) {
    const errors = [...r.errors.values()].reduce((a, b) => a + b, 0);
    const cells = [`${Math.round(r.perSecond)}`, `${r.p50.toFixed(1)} ms`, `${r.p99.toFixed(1)} ms`, `${errors}`];
    console.log(`${system.label.padEnd(width)}${cells.map(col).join("")}`);
  }
  const o = results.get(ours);
  const e = results.get(etcd);
  if (o && e) {
    const ratio = (a: number, b: number) => col((a / b).toFixed(2));
    console.log(
      `${"ratio (ours/etcd)".padEnd(width)}${ratio(o.perSecond, e.perSecond)}${ratio(o.p50, e.p50)}${ratio(o.p99, e.p99)}  (commits/s: higher is better, target >= 1.00; latency: lower is better)`,
    );
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  console.error(`commit: ${e instanceof Error ? e.message : e}`);
  process.exitCode = 1;
} finally {
  cleanupAll();
}
