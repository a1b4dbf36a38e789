/**
 * Work-queue benchmark: 3 voters, N concurrent workers (signed HTTP clients acting as nodes) claiming
 * and completing no-op items through the leader; items per second and claim latency. Each item is two
 * replicated writes (claim + complete), so the anchor is etcd 3.4's replicated put at the same
 * concurrency, measured as bench/commit does, in the same run (one cluster at a time).
 *
 *   bun bench/queue/run.ts [--concurrency 64] [--seconds 10] [--queued 2000] [--only ours|etcd]
 *   P2P_BIN=path/to/p2p-orchestrator overrides dist/p2p-orchestrator.
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { CallError, type Credentials, call } from "../../src/net/client.ts";
import { ROUTES } from "../../src/net/route-table.ts";
import { binMissing } from "../detect/ours.ts";
import { stableLeader } from "../failover/cluster.ts";
import { etcd, etcdMissing } from "../failover/etcd.ts";
import type { ElectionBody } from "../failover/ours.ts";
import { cleanupAll, closedLoop, errorLabel, installCleanup, percentile, sleep } from "../lib.ts";
import { JOB_TYPE, startQueueCluster } from "./ours.ts";

const WARMUP_MS = 1_000;
const REQUEST_TIMEOUT_MS = 5_000;
const LAG_SAMPLE_MS = 1_000;
/** The same 64-byte value for every etcd write, as in bench/commit. */
const VALUE = "v".repeat(64);
/**
 * Items per POST /work/batch. The route takes up to 1000, but applying 1000 at once stalls the
 * leader's event loop for ~250 ms on a small VM, long enough to lose its lease and leadership.
 */
const BATCH = 200;
const PREFILL_DEADLINE_MS = 60_000;
/** After the pre-fill, wait (at most this long) until the leader's trailing lag p99 is under the target. */
const SETTLE_DEADLINE_MS = 12_000;
/** A worker pauses this long after a failed request or an empty claim, so errors cannot spin. */
const ERROR_BACKOFF_MS = 20;

const TARGET_RATIO = 0.5;
const TARGET_CLAIM_P99_MS = 50;
const TARGET_LAG_P99_MS = 20;

function options() {
  const { values } = parseArgs({
    options: {
      concurrency: { type: "string", default: "64" },
      seconds: { type: "string", default: "10" },
      queued: { type: "string", default: "2000" },
      only: { type: "string" },
    },
  });
  const concurrency = Number(values.concurrency);
  const secs = Number(values.seconds);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
    throw new Error("--concurrency: an integer from 1 to 1024");
  }
  if (!Number.isFinite(secs) || secs < 1 || secs > 600) throw new Error("--seconds: a number from 1 to 600");
  const queued = Number(values.queued);
  if (!Number.isInteger(queued) || queued < BATCH || queued > 40_000 || queued % BATCH !== 0) {
    throw new Error(`--queued: a multiple of ${BATCH} from ${BATCH} to 40000`);
  }
  if (values.only !== undefined && values.only !== "ours" && values.only !== "etcd") {
    throw new Error("--only: ours or etcd");
  }
  return { concurrency, ms: secs * 1000, queued, only: values.only };
}

interface Result {
  label: string;
  /** Completed items (ours) or committed puts (etcd) per second. */
  perSecond: number;
  done: number;
  /** Claim latency (ours) or put latency (etcd). */
  p50: number;
  p99: number;
  errors: Map<string, number>;
}

interface QueueResult extends Result {
  complete50: number;
  complete99: number;
  item50: number;
  item99: number;
  lag: number[];
  /** Items the feeder added while the workers ran. */
  fedDuringRun: number;
  /** One response body per error label, for the report. */
  bodies: Map<string, string>;
  serverCompleted: number | null;
  /** How long the leader's lag took to fall back under the target after the pre-fill, and its value then. */
  settleMs: number;
  settledLag: number | null;
  /** "<new leader> at <phase> +<s>" for each 421 hint that moved the requests to another node. */
  leaderChanges: string[];
}

const errorCount = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const errorList = (m: Map<string, number>) => [...m].map(([what, n]) => `${what} x${n}`).join(", ") || "none";

/** etcd's replicated put at `concurrency`, exactly as bench/commit measures it. */
async function etcdPuts(concurrency: number, ms: number): Promise<Result> {
  const cluster = await etcd.start(0);
  try {
    const leader = await stableLeader(cluster);
    const r = await closedLoop(concurrency, WARMUP_MS, ms, (w, n) =>
      cluster.put(leader, `k${w}-${n}`, VALUE, REQUEST_TIMEOUT_MS),
    );
    await cluster.assertRunning();
    return {
      label: etcd.label,
      perSecond: r.latencies.length / (r.elapsedMs / 1000),
      done: r.latencies.length,
      p50: percentile(r.latencies, 50),
      p99: percentile(r.latencies, 99),
      errors: r.errors,
    };
  } finally {
    await cluster.stop();
  }
}

interface ClaimBody {
  claims: { id: string; leaseId: string }[];
}
interface ReportBody {
  state: string;
  duplicate: boolean;
}

/** Our work queue: `concurrency` workers w0..w<n-1> each claim one item, complete it, and go again. */
async function queueItems(concurrency: number, ms: number, queued: number): Promise<QueueResult> {
  const q = await startQueueCluster(concurrency);
  try {
    const first = await stableLeader(q.raft);
    const election = await q.election(first);
    if (!election?.leader?.address || election.role !== "leader") {
      throw new Error(`GET /election on the leader: ${JSON.stringify(election)}`);
    }
    let leaderAddr = election.leader.address;
    // Signatures name their destination: the leader's id, moved with its address on a 421.
    let leaderId = election.leader.id;
    let t0 = performance.now();
    let phase = "pre-fill";
    const leaderChanges: string[] = [];
    const operator: Credentials = { kind: "operator", token: q.token };
    const bodies = new Map<string, string>();
    const label = (what: string, e: unknown, at: string): string => {
      const l =
        e instanceof CallError
          ? e.kind === "http"
            ? `${what} HTTP ${e.status} ${(e.body as { error?: string } | undefined)?.error ?? ""}`.trimEnd()
            : `${what} ${e.kind}`
          : `${what} ${errorLabel(e)}`;
      if (!bodies.has(l)) {
        const detail = e instanceof CallError && e.body !== undefined ? JSON.stringify(e.body) : String(e);
        bodies.set(l, `(first one, from ${at}) ${detail.slice(0, 500)}`);
      }
      return l;
    };
    /** Labels a failure; on 421 with a leader hint, moves every later request to the hinted leader. */
    const failed = async (what: string, e: unknown, at: string): Promise<string> => {
      const hint = e instanceof CallError && e.status === 421 ? (e.body as ElectionBody | undefined)?.leader : null;
      if (hint?.address && hint.address !== leaderAddr) {
        leaderChanges.push(`${hint.id} at ${phase} +${((performance.now() - t0) / 1000).toFixed(1)} s`);
        leaderAddr = hint.address;
        leaderId = hint.id;
      }
      await sleep(ERROR_BACKOFF_MS);
      return label(what, e, at);
    };

    let submitted = 0;
    let handedOut = 0;
    /** Adds the next BATCH items q-<n>, retrying through leader changes and backpressure until `deadline`. */
    const submit = async (deadline: number): Promise<number> => {
      const items = Array.from({ length: BATCH }, (_, k) => ({ type: JOB_TYPE, id: `q-${submitted + k}` }));
      for (;;) {
        const at = leaderAddr;
        try {
          const answer = (await call(at, ROUTES.workBatch, operator, {
            body: { items },
            timeoutMs: REQUEST_TIMEOUT_MS,
          })) as { added: string[] };
          submitted += BATCH;
          return answer.added.length;
        } catch (e) {
          const l = await failed("submit", e, at);
          if (performance.now() > deadline) throw new Error(`POST /work/batch: ${l}: ${bodies.get(l)}`);
        }
      }
    };
    const prefillEnd = performance.now() + PREFILL_DEADLINE_MS;
    while (submitted < queued) await submit(prefillEnd);

    // Let the leader's trailing lag window forget the pre-fill before the workers start.
    const leaderIndex = () => q.addresses.indexOf(leaderAddr);
    const settleStart = performance.now();
    let settledLag: number | null = null;
    while (performance.now() - settleStart < SETTLE_DEADLINE_MS) {
      settledLag = (await q.raft.eventLoopLagMs?.(leaderIndex())) ?? null;
      if (settledLag !== null && settledLag < TARGET_LAG_P99_MS) break;
      await sleep(250);
    }
    const settleMs = performance.now() - settleStart;

    const creds: Credentials[] = Array.from({ length: concurrency }, (_, w) => ({
      kind: "peer",
      secret: q.secret,
      nodeId: `w${w}`,
    }));
    const claimLatencies: number[] = [];
    const completeLatencies: number[] = [];

    const item = async (w: number, _n: number, counted: boolean): Promise<string | null> => {
      const node = `w${w}`;
      const who = creds[w] as Credentials;
      const at = leaderAddr;
      const c0 = performance.now();
      let claim: ClaimBody["claims"][number] | undefined;
      try {
        const answer = (await call(at, ROUTES.peerWorkClaim, who, {
          body: {
            offer: {
              node,
              types: [JOB_TYPE],
              capabilities: [JOB_TYPE],
              freeSlots: 1,
              gpus: 0,
              freeGpuMemoryGb: 0,
              freeDiskGb: 100,
              slotsPerType: {},
            },
            max: 1,
          },
          timeoutMs: REQUEST_TIMEOUT_MS,
          to: leaderId,
        })) as ClaimBody;
        claim = answer.claims[0];
      } catch (e) {
        return failed("claim", e, at);
      }
      const c1 = performance.now();
      if (!claim) {
        await sleep(ERROR_BACKOFF_MS);
        return "claim came back empty (queue drained)";
      }
      handedOut++;
      if (counted) claimLatencies.push(c1 - c0);
      const completeAt = leaderAddr;
      try {
        const answer = (await call(completeAt, ROUTES.peerWorkComplete, who, {
          params: { id: claim.id },
          body: { leaseId: claim.leaseId, result: null },
          timeoutMs: REQUEST_TIMEOUT_MS,
          to: leaderId,
        })) as ReportBody;
        if (answer.state !== "completed" || answer.duplicate) {
          const l = `complete answered state ${answer.state}${answer.duplicate ? " (duplicate)" : ""}`;
          if (!bodies.has(l)) bodies.set(l, JSON.stringify(answer));
          return l;
        }
      } catch (e) {
        return failed("complete", e, completeAt);
      }
      if (counted) completeLatencies.push(performance.now() - c1);
      return null;
    };

    let running = true;
    const lag: number[] = [];
    const sampleLag = async () => {
      await sleep(WARMUP_MS);
      while (running) {
        const v = await q.raft.eventLoopLagMs?.(leaderIndex());
        if (v !== null && v !== undefined) lag.push(v);
        for (let t = 0; t < LAG_SAMPLE_MS && running; t += 50) await sleep(50);
      }
    };
    let fedDuringRun = 0;
    const feed = async () => {
      while (running) {
        if (submitted - handedOut > queued - BATCH) {
          await sleep(20);
          continue;
        }
        try {
          fedDuringRun += await submit(0);
        } catch {
          // Tallied by `failed`; its body is printed with the others.
        }
      }
    };

    t0 = performance.now();
    phase = "run";
    const loop = closedLoop(concurrency, WARMUP_MS, ms, item).finally(() => {
      running = false;
    });
    const [r] = await Promise.all([loop, sampleLag(), feed()]);
    await q.raft.assertRunning();

    let serverCompleted: number | null = null;
    try {
      const status = (await call(leaderAddr, ROUTES.workStatus, operator, { timeoutMs: 5_000 })) as {
        byState: Record<string, number>;
      };
      serverCompleted = status.byState.completed ?? 0;
    } catch {
      serverCompleted = null;
    }

    const itemLatencies = r.latencies;
    return {
      label: "p2p-orchestrator",
      perSecond: itemLatencies.length / (r.elapsedMs / 1000),
      done: itemLatencies.length,
      p50: percentile(claimLatencies, 50),
      p99: percentile(claimLatencies, 99),
      errors: r.errors,
      complete50: percentile(completeLatencies, 50),
      complete99: percentile(completeLatencies, 99),
      item50: percentile(itemLatencies, 50),
      item99: percentile(itemLatencies, 99),
      lag,
      fedDuringRun,
      bodies,
      serverCompleted,
      settleMs,
      settledLag,
      leaderChanges,
    };
  } finally {
    await q.raft.stop();
  }
}

async function main(): Promise<number> {
  const { concurrency, ms, queued, only } = options();
  const missing = [only !== "etcd" ? await binMissing() : null, only !== "ours" ? etcdMissing() : null];
  for (const m of missing) if (m) console.error(`queue: ${m}`);
  if (missing.some((m) => m !== null)) return 1;

  installCleanup();
  console.log(
    `queue: 3 voters, ${concurrency} concurrent workers claiming + completing no-op items through the leader, ${ms / 1000} s after ${WARMUP_MS / 1000} s warm-up`,
  );
  console.log(
    `       ${queued} items kept queued (pre-filled in batches of ${BATCH}, topped up by a batch as they are claimed)`,
  );
  console.log(
    `       anchor: etcd replicated puts at the same concurrency (an item is two replicated writes: claim + complete)`,
  );
  console.log(
    `       the systems run one after the other; each cluster and this load generator share ${availableParallelism()} CPU cores`,
  );
  const ours = "p2p-orchestrator";
  const width = Math.max("ratio (ours/etcd)".length, ours.length, etcd.label.length) + 2;

  let o: QueueResult | undefined;
  let e: Result | undefined;
  if (only !== "etcd") {
    o = await queueItems(concurrency, ms, queued);
    console.log(
      `${ours.padEnd(width)}${Math.round(o.perSecond)} items/s completed (${o.done}), claim p50 ${o.p50.toFixed(1)} ms, p99 ${o.p99.toFixed(1)} ms; errors: ${errorList(o.errors)}`,
    );
    console.log(
      `${"".padEnd(width)}complete p50 ${o.complete50.toFixed(1)} ms, p99 ${o.complete99.toFixed(1)} ms; whole item p50 ${o.item50.toFixed(1)} ms, p99 ${o.item99.toFixed(1)} ms`,
    );
    const lag =
      o.lag.length > 0 ? `max ${Math.max(...o.lag).toFixed(1)} ms over ${o.lag.length} samples` : "not exposed";
    console.log(`${"".padEnd(width)}leader event-loop lag p99 (p2p_event_loop_lag_p99_ms): ${lag}`);
    console.log(
      `${"".padEnd(width)}feeder added ${o.fedDuringRun} items during the run; leader reports ${o.serverCompleted ?? "?"} completed in all (warm-up included)`,
    );
    console.log(
      `${"".padEnd(width)}after the pre-fill the leader's lag p99 took ${(o.settleMs / 1000).toFixed(1)} s to settle (${o.settledLag?.toFixed(1) ?? "?"} ms)`,
    );
    if (o.leaderChanges.length > 0) {
      console.log(`${"".padEnd(width)}LEADERSHIP MOVED (followed via 421 hints): ${o.leaderChanges.join(", ")}`);
    }
    for (const [what, body] of o.bodies) console.log(`${"".padEnd(width)}${what}: ${body}`);
  }
  if (only !== "ours") {
    e = await etcdPuts(concurrency, ms);
    console.log(
      `${e.label.padEnd(width)}${Math.round(e.perSecond)}/s committed puts (${e.done}), p50 ${e.p50.toFixed(1)} ms, p99 ${e.p99.toFixed(1)} ms; errors: ${errorList(e.errors)}`,
    );
  }

  const col = (s: string) => s.padStart(14);
  console.log(`\n${"system".padEnd(width)}${col("per second")}${col("p50")}${col("p99")}${col("errors")}`);
  for (const [r, unit] of [
    [o, "items"],
    [e, "puts"],
  ] as const) {
    if (!r) continue;
    const cells = [`${Math.round(r.perSecond)} ${unit}`, `${r.p50.toFixed(1)} ms`, `${r.p99.toFixed(1)} ms`];
    console.log(`${r.label.padEnd(width)}${[...cells, `${errorCount(r.errors)}`].map(col).join("")}`);
  }
  if (o && e) {
    const ratio = (a: number, b: number) => col((a / b).toFixed(2));
    console.log(
      `${"ratio (ours/etcd)".padEnd(width)}${ratio(o.perSecond, e.perSecond)}${ratio(o.p50, e.p50)}${ratio(o.p99, e.p99)}`,
    );
  }
  console.log(`${"".padEnd(width)}(latency: ours = claim, etcd = put; per second: ours = items, each two writes)`);
  if (o) {
    const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
    if (e) {
      const ratio = o.perSecond / e.perSecond;
      console.log(
        `\nitems/s vs etcd puts/s: ${ratio.toFixed(2)} (target >= ${TARGET_RATIO}) ${verdict(ratio >= TARGET_RATIO)}`,
      );
    }
    console.log(
      `claim p99: ${o.p99.toFixed(1)} ms (target < ${TARGET_CLAIM_P99_MS}) ${verdict(o.p99 < TARGET_CLAIM_P99_MS)}`,
    );
    const lagMax = o.lag.length > 0 ? Math.max(...o.lag) : Number.NaN;
    console.log(
      `leader loop lag p99: ${lagMax.toFixed(1)} ms (target < ${TARGET_LAG_P99_MS}) ${verdict(lagMax < TARGET_LAG_P99_MS)}`,
    );
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  console.error(`queue: ${e instanceof Error ? e.message : e}`);
  process.exitCode = 1;
} finally {
  cleanupAll();
}
