/**
 * Data-sync benchmark: our binary moving files between nodes beside rsync (a daemon on loopback,
 * `rsync -a` pulls), measured in the same run.
 *
 *   1. Point to point: one --size-mib file (default 1 GiB) from n1 to n2.
 *   2. Fan-out: one --fanout-mib file (default 256 MiB) from n1 to 8 receivers through the swarm,
 *      beside one transfer of the same file with our binary and 8 sequential rsync pulls; run twice,
 *      unlimited and with every node's link limited to --link-rate (rsync with the same --bwlimit).
 *
 *   bun bench/sync/run.ts [--trials 3] [--only p2p|fanout] [--size-mib 1024] [--fanout-mib 256]
 *                         [--link-rate 40MB/s] [--links both|unlimited|limited] [--stagger 0]
 *   P2P_BIN=path/to/p2p-orchestrator overrides dist/p2p-orchestrator.
 */
import { randomFillSync } from "node:crypto";
import { closeSync, openSync, utimesSync, writeSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { binMissing, binPath } from "../detect/ours.ts";
import { cleanupAll, installCleanup, makeTempDir, median, sleep, waitFor } from "../lib.ts";
import { type SessionView, type SyncCluster, type SyncStatusView, startSyncCluster, type TraceRow } from "./cluster.ts";
import { type RsyncDaemon, rsyncMissing, startRsyncDaemon } from "./rsync.ts";

const MiB = 1024 * 1024;
const MB = 1_000_000;
const OUR_FIRST_HOST = 61;
const RSYNC_HOST = "127.0.0.81";
const RSYNC_PORT = 9451;
/** Each cluster gets the next port, so no trial meets a socket of the one before. */
let nextPort = 9461;
const FANOUT_RECEIVERS = 8;
const POLL_MS = 20;
const INDEX_DEADLINE_MS = 180_000;
const UPLOAD_SAMPLE_MS = 250;
/**
 * Point to point, each side's transfer starts this long after anything before it (a trial's setup, the
 * other side's run and clean-up). This VM hands freed memory back to its host within seconds, and
 * writing 1 GiB into pages the host must fault in again took 2.7 s where the same rsync pull into pages
 * just freed took 0.8 s: whichever side ran right after the other's clean-up was handed the fast pages.
 * With the same idle time before each, and the order alternating between trials, neither is.
 */
const SETTLE_MS = 3_000;

const TARGET_P2P_RATIO = 0.9;
const TARGET_FANOUT_VS_ONE = 2;
const TARGET_COPIES = 2;

/** "40MB/s", "500KB/s", "1.5GB/s" (decimal units, as the cluster file reads them), or 0; bytes per second. */
function parseRate(input: string): number {
  if (input.trim() === "0") return 0;
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)\/s$/i.exec(input.trim());
  if (!m) return Number.NaN;
  const unit = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 }[(m[2] as string).toUpperCase() as "B" | "KB" | "MB" | "GB"];
  return Math.round(Number(m[1]) * unit);
}

function parseMs(input: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s)?$/.exec(input.trim());
  if (!m) return Number.NaN;
  return Math.round(Number(m[1]) * (m[2] === "ms" ? 1 : 1000));
}

function options() {
  const { values } = parseArgs({
    options: {
      trials: { type: "string", default: "3" },
      only: { type: "string" },
      "size-mib": { type: "string", default: "1024" },
      "fanout-mib": { type: "string", default: "256" },
      "link-rate": { type: "string", default: "40MB/s" },
      stagger: { type: "string", default: "0" },
      links: { type: "string", default: "both" },
    },
  });
  const trials = Number(values.trials);
  if (!Number.isInteger(trials) || trials < 1 || trials > 50) throw new Error("--trials: an integer from 1 to 50");
  if (values.only !== undefined && values.only !== "p2p" && values.only !== "fanout") {
    throw new Error("--only: p2p or fanout");
  }
  const sizeMiB = Number(values["size-mib"]);
  const fanoutMiB = Number(values["fanout-mib"]);
  for (const [name, v] of [
    ["--size-mib", sizeMiB],
    ["--fanout-mib", fanoutMiB],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 16_384) throw new Error(`${name}: an integer from 1 to 16384`);
  }
  const linkRate = parseRate(values["link-rate"]);
  if (!Number.isFinite(linkRate) || linkRate < 1024) {
    throw new Error('--link-rate: a rate such as "40MB/s" (at least 1KB/s; decimal units)');
  }
  const links = values.links;
  if (links !== "both" && links !== "unlimited" && links !== "limited") {
    throw new Error("--links: both, unlimited or limited (which fan-out variants to run)");
  }
  const staggerMs = parseMs(values.stagger);
  if (!Number.isFinite(staggerMs) || staggerMs < 0 || staggerMs > 60_000) {
    throw new Error('--stagger: a duration such as "1s", "500ms" or 0');
  }
  return { trials, only: values.only, sizeMiB, fanoutMiB, linkRate, staggerMs, links };
}

/** `bytes` of random data in a new file, with an mtime an hour old (past the indexer's settle window). */
function writeRandomFile(path: string, bytes: number): void {
  const chunk = Buffer.alloc(8 * MiB);
  const fd = openSync(path, "w");
  try {
    for (let at = 0; at < bytes; ) {
      const n = Math.min(chunk.length, bytes - at);
      randomFillSync(chunk, 0, n);
      for (let off = 0; off < n; ) off += writeSync(fd, chunk, off, n - off, at + off);
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  const old = new Date(Date.now() - 3_600_000);
  utimesSync(path, old, old);
}

const mbps = (bytes: number, ms: number) => bytes / MB / (ms / 1000);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

// ---- our side ---------------------------------------------------------------------------------------

interface OurRun {
  /** From the trigger until the last receiver had committed the file. */
  totalMs: number;
  /** Each receiver's commit, from the trigger, in node order (n2...). */
  doneMs: number[];
  /** Each receiver's session start (adoption: gossip, round, stagger), from the trigger. */
  adoptMs: (number | null)[];
  /** Each receiver's time in each session state (fetching, verifying, ...), from its traces. */
  phaseMs: Map<string, number>[];
  /** p2p_sync_bytes_total{direction="sent"} on the origin over the run. */
  originSent: number;
  /** Sum of the receivers' p2p_sync_bytes_total{direction="received"}. */
  received: number;
  /** Per receiver: pieces fetched from each source, attempts, failures (from the session's traces). */
  detail: string[];
  /** Traced failed attempts and failed triggers, for the report. */
  problems: string[];
}

interface OurRunOptions {
  nodes: number;
  source: string;
  name: string;
  size: number;
  rate: number;
  swarm: boolean;
  staggerMs: number;
  /** Idle time between the cluster being up and the file being placed on n1 (see SETTLE_MS). */
  settleMs?: number;
}

/** Pieces per source in a "fetched" trace cause: "...; this attempt fetched 12 from n1, 3 from n4, after 2 rejected". */
function piecesBySource(cause: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of cause.matchAll(/(\d+) from ([A-Za-z0-9._-]+)/g)) out.set(m[2] ?? "", Number(m[1]));
  return out;
}

const PHASES = ["fetching", "verifying", "committing", "retry-wait"];

/** Time spent in each state of one session, from its traces (ms by state). */
function phases(traces: readonly TraceRow[]): Map<string, number> {
  const spent = new Map<string, number>();
  for (let k = 0; k + 1 < traces.length; k++) {
    const t = traces[k] as TraceRow;
    const next = traces[k + 1] as TraceRow;
    spent.set(t.to, (spent.get(t.to) ?? 0) + (next.at - t.at));
  }
  return spent;
}

const phaseText = (spent: Map<string, number>) =>
  PHASES.filter((s) => spent.has(s))
    .map((s) => `${s} ${secs(spent.get(s) ?? 0)}`)
    .join(", ") || "no traces";

async function ourRun(o: OurRunOptions): Promise<OurRun> {
  const c = await startSyncCluster({
    nodes: o.nodes,
    firstHost: OUR_FIRST_HOST,
    port: nextPort++,
    rateBytesPerSec: o.rate,
    swarm: o.swarm,
    staggerMs: o.staggerMs,
  });
  const receivers = c.ids.map((_, i) => i).slice(1);
  try {
    // Before the file is placed: once n1 has indexed it, the receivers may start on their own.
    if (o.settleMs) await sleep(o.settleMs);
    c.place(0, o.source, o.name);
    await waitFor(
      async () => {
        await c.assertRunning();
        return c.indexed(0, o.name, o.size);
      },
      INDEX_DEADLINE_MS,
      `n1 to index ${o.name}`,
      POLL_MS,
    );
    const sentBefore = await c.metric(0, "p2p_sync_bytes_total", 'direction="sent"');
    const t0 = performance.now();
    const wall0 = Date.now();
    await c.post(0, "/sync/start", {});
    const triggerErrors: string[] = [];
    const triggers = receivers.map((i) =>
      c.post(i, "/sync/start", {}).catch((e) => triggerErrors.push(`${c.ids[i]}: ${(e as Error).message}`)),
    );
    const doneAt = new Map<number, number>();
    const sampler = receivers.length > 1 ? sampleUploads(c) : null;
    // Slow links, shared CPU: three times what sending every copy from the origin would take (40 MB/s unlimited).
    const deadline = 60_000 + ((o.size * receivers.length) / (o.rate > 0 ? o.rate : 40 * MB)) * 3_000;
    let uploads: UploadSamples[] = [];
    try {
      await waitFor(
        async () => {
          for (const i of receivers) if (!doneAt.has(i) && c.holds(i, o.name, o.size)) doneAt.set(i, performance.now());
          if (doneAt.size === receivers.length) return true;
          await c.assertRunning();
          return false;
        },
        deadline,
        `${o.name} on all ${receivers.length} receivers`,
        POLL_MS,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${await diagnose(c, receivers, o.name)}`);
    } finally {
      uploads = (await sampler?.stop()) ?? [];
    }
    await Promise.all(triggers);
    const totalMs = Math.max(...doneAt.values()) - t0;
    const originSent = (await c.metric(0, "p2p_sync_bytes_total", 'direction="sent"')) - sentBefore;
    let received = 0;
    const adoptMs: (number | null)[] = [];
    const phaseMs: Map<string, number>[] = [];
    const detail: string[] = [];
    const problems: string[] = triggerErrors.map((e) => `POST /sync/start failed on ${e}`);
    for (const i of receivers) {
      const got = await c.metric(i, "p2p_sync_bytes_total", 'direction="received"');
      received += got;
      const status = await c.get<SyncStatusView>(i, "/sync/status");
      const session = status.recent.find((s: SessionView) => s.path === o.name && s.state === "done");
      adoptMs.push(session ? session.startedAt - wall0 : null);
      const { traces } = await c.get<{ traces: TraceRow[] }>(
        i,
        `/traces?machine=sync&limit=1000${session ? `&instance=${session.id}` : ""}`,
      );
      const fetched = new Map<string, number>();
      let rejected = 0;
      for (const t of traces) {
        if (t.to === "verifying" && t.cause) {
          for (const [src, n] of piecesBySource(t.cause)) fetched.set(src, (fetched.get(src) ?? 0) + n);
          rejected += Number(/after (\d+) rejected/.exec(t.cause)?.[1] ?? 0);
        }
        if (t.event === "fail") problems.push(`${c.ids[i]}: ${t.from} -> ${t.to}: ${t.cause}`);
      }
      const from = [...fetched].map(([src, n]) => `${n}${src === "n1" ? "*" : ""} ${src}`).join(", ");
      const done = doneAt.get(i) ?? Number.NaN;
      const adopt = adoptMs.at(-1);
      phaseMs.push(phases(traces));
      detail.push(
        `${c.ids[i]}: adopted +${adopt == null ? "?" : secs(adopt)}, done +${secs(done - t0)} (${phaseText(phaseMs.at(-1) ?? new Map())}), ${session?.attempts ?? "?"} attempt(s); pieces from ${from || "?"}${rejected > 0 ? `; ${rejected} piece requests failed` : ""}${got > o.size ? `; received ${((got - o.size) / MiB).toFixed(0)} MiB more than the file` : ""}`,
      );
    }
    const full = uploads
      .map((u, i) => (u.samples > 0 && u.full > 0 ? `${c.ids[i]} ${Math.round((100 * u.full) / u.samples)}%` : ""))
      .filter(Boolean);
    if (receivers.length > 1) {
      detail.push(
        `upload slots all in use (${uploads[0]?.limit ?? "?"}/${uploads[0]?.limit ?? "?"}, more get 503) in: ${full.join(", ") || "none"}`,
      );
    }
    return {
      totalMs,
      doneMs: receivers.map((i) => (doneAt.get(i) ?? Number.NaN) - t0),
      adoptMs,
      phaseMs,
      originSent,
      received,
      detail,
      problems,
    };
  } finally {
    await c.stop();
  }
}

interface UploadSamples {
  samples: number;
  /** Samples in which every upload slot was taken. */
  full: number;
  limit: number;
}

/** Polls every node's GET /sync/status while a transfer runs: how often its upload slots were all taken. */
function sampleUploads(c: SyncCluster): { stop(): Promise<UploadSamples[]> } {
  const out: UploadSamples[] = c.ids.map(() => ({ samples: 0, full: 0, limit: 0 }));
  let running = true;
  const loop = (async () => {
    while (running) {
      await Promise.all(
        c.ids.map(async (_, i) => {
          try {
            const { uploads } = await c.get<SyncStatusView>(i, "/sync/status");
            const u = out[i] as UploadSamples;
            u.samples++;
            u.limit = uploads.limit;
            if (uploads.inUse >= uploads.limit) u.full++;
          } catch {
            // A busy node that does not answer is not a sample.
          }
        }),
      );
      await sleep(UPLOAD_SAMPLE_MS);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return out;
    },
  };
}

/** What each receiver is doing and its last sync traces and log lines, for a transfer that did not finish. */
async function diagnose(c: SyncCluster, receivers: number[], name: string): Promise<string> {
  const out: string[] = [];
  for (const i of receivers) {
    const id = c.ids[i];
    try {
      const s = await c.get<SyncStatusView>(i, "/sync/status");
      const a = s.active.find((x) => x.path === name);
      out.push(
        `${id}: ${a ? `${a.state} ${a.bytesDone}/${a.bytesTotal} from [${a.sources.join(",")}], attempts ${a.attempts}, lastError ${a.lastError}` : `no active session; recent: ${JSON.stringify(s.recent.map((r) => [r.state, r.lastError]))}`}`,
      );
      const { traces } = await c.get<{ traces: TraceRow[] }>(i, "/traces?machine=sync&limit=8");
      for (const t of traces) out.push(`    ${t.instance} ${t.from} -> ${t.to} (${t.event}): ${t.cause}`);
    } catch (e) {
      out.push(`${id}: ${(e as Error).message}`);
    }
    out.push(c.logTail(i, 5).replace(/^/gm, "    log: "));
  }
  return out.join("\n");
}

// ---- scenarios --------------------------------------------------------------------------------------

interface P2pTrial {
  ours: OurRun | null;
  rsyncMs: number | null;
}

async function pointToPoint(
  rsync: RsyncDaemon,
  source: string,
  name: string,
  size: number,
  trials: number,
): Promise<P2pTrial[]> {
  console.log(`\n== point to point: one ${size / MiB} MiB file, n1 -> n2 (2 nodes; ours: swarm off, no rate limit) ==`);
  console.log("   ours: from POST /sync/start on n2 (n1 has indexed the file) until n2 has committed it");
  console.log(`   rsync: rsync -a ${rsync.url}/${name} <fresh folder>/, from spawn to exit`);
  const out: P2pTrial[] = [];
  for (let t = 1; t <= trials; t++) {
    const trial: P2pTrial = { ours: null, rsyncMs: null };
    const runOurs = async () => {
      try {
        trial.ours = await ourRun({
          nodes: 2,
          source,
          name,
          size,
          rate: 0,
          swarm: false,
          staggerMs: 0,
          settleMs: SETTLE_MS,
        });
        const o = trial.ours;
        console.log(
          `trial ${t} ours   ${secs(o.totalMs).padStart(9)}  ${mbps(size, o.totalMs).toFixed(0).padStart(5)} MB/s   (${o.detail.join("; ")})`,
        );
        for (const p of o.problems) console.log(`               ${p}`);
      } catch (e) {
        console.log(`trial ${t} ours   FAILED: ${(e as Error).message}`);
      }
    };
    const runRsync = async () => {
      try {
        await sleep(SETTLE_MS);
        trial.rsyncMs = (await rsync.pulls(name, size, 0, 1)).totalMs;
        console.log(
          `trial ${t} rsync  ${secs(trial.rsyncMs).padStart(9)}  ${mbps(size, trial.rsyncMs).toFixed(0).padStart(5)} MB/s`,
        );
      } catch (e) {
        console.log(`trial ${t} rsync  FAILED: ${(e as Error).message}`);
      }
    };
    if (t % 2 === 1) {
      await runOurs();
      await runRsync();
    } else {
      await runRsync();
      await runOurs();
    }
    out.push(trial);
  }
  return out;
}

interface FanoutTrial {
  one: OurRun | null;
  fan: OurRun | null;
  rsync: { totalMs: number; each: number[] } | null;
}

interface Variant {
  label: string;
  rate: number;
}

async function fanout(
  rsync: RsyncDaemon,
  source: string,
  name: string,
  size: number,
  trials: number,
  staggerMs: number,
  variant: Variant,
): Promise<FanoutTrial[]> {
  const bwlimitKiB = variant.rate > 0 ? Math.round(variant.rate / 1024) : 0;
  console.log(`\n== fan-out, ${variant.label}: one ${size / MiB} MiB file, n1 -> ${FANOUT_RECEIVERS} receivers ==`);
  console.log(
    `   ours: 9 nodes, swarm = true, stagger = ${staggerMs} ms${variant.rate > 0 ? `, every node upload_rate = download_rate = ${variant.rate / MB} MB/s` : ""}; from POST /sync/start (origin, then every receiver) until all ${FANOUT_RECEIVERS} have committed it`,
  );
  console.log("         one transfer: the same file, same settings, in a 2-node cluster (n1 -> n2)");
  console.log(
    `   rsync: ${FANOUT_RECEIVERS} sequential pulls into fresh folders${bwlimitKiB > 0 ? `, --bwlimit=${bwlimitKiB} (KiB/s = ${variant.rate / MB} MB/s)` : ""}`,
  );
  console.log("   pieces per source: * marks the origin n1");
  const out: FanoutTrial[] = [];
  const common = { source, name, size, rate: variant.rate, swarm: true, staggerMs };
  for (let t = 1; t <= trials; t++) {
    const trial: FanoutTrial = { one: null, fan: null, rsync: null };
    try {
      trial.one = await ourRun({ ...common, nodes: 2 });
      console.log(
        `trial ${t} ours, one transfer  ${secs(trial.one.totalMs).padStart(9)}  ${mbps(size, trial.one.totalMs).toFixed(0).padStart(4)} MB/s  (${trial.one.detail.join("; ")})`,
      );
      for (const p of trial.one.problems) console.log(`               ${p}`);
    } catch (e) {
      console.log(`trial ${t} ours, one transfer  FAILED: ${(e as Error).message}`);
    }
    try {
      const f = await ourRun({ ...common, nodes: 1 + FANOUT_RECEIVERS });
      trial.fan = f;
      const sorted = [...f.doneMs].sort((a, b) => a - b);
      console.log(
        `trial ${t} ours, fan-out       ${secs(f.totalMs).padStart(9)}  first done ${secs(sorted[0] ?? Number.NaN)}, median ${secs(median(sorted))}; origin sent ${(f.originSent / size).toFixed(2)} copies, receivers got ${(f.received / size).toFixed(2)}`,
      );
      for (const d of f.detail) console.log(`               ${d}`);
      for (const p of f.problems.slice(0, 10)) console.log(`               ${p}`);
      if (f.problems.length > 10) console.log(`               ... and ${f.problems.length - 10} more failures`);
    } catch (e) {
      console.log(`trial ${t} ours, fan-out       FAILED: ${(e as Error).message}`);
    }
    try {
      trial.rsync = await rsync.pulls(name, size, bwlimitKiB, FANOUT_RECEIVERS);
      console.log(
        `trial ${t} rsync x${FANOUT_RECEIVERS} sequential ${secs(trial.rsync.totalMs).padStart(9)}  (each: ${trial.rsync.each.map((ms) => (ms / 1000).toFixed(2)).join(", ")} s)`,
      );
    } catch (e) {
      console.log(`trial ${t} rsync x${FANOUT_RECEIVERS}           FAILED: ${(e as Error).message}`);
    }
    out.push(trial);
  }
  return out;
}

// ---- summary ----------------------------------------------------------------------------------------

const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
const present = <T>(xs: (T | null)[]): T[] => xs.filter((x): x is T => x !== null);

function summarize(
  p2p: { trials: P2pTrial[]; size: number } | null,
  fan: { variant: Variant; trials: FanoutTrial[] }[],
  fanSize: number,
  staggerMs: number,
): void {
  const rows: string[][] = [["scenario", "ours", "rsync", "ours/rsync", "target", ""]];
  const notes: string[] = [];
  if (p2p) {
    const ours = median(present(p2p.trials.map((t) => t.ours)).map((o) => o.totalMs));
    const rs = median(present(p2p.trials.map((t) => t.rsyncMs)));
    const oursRate = mbps(p2p.size, ours);
    const rsRate = mbps(p2p.size, rs);
    const ratio = oursRate / rsRate;
    rows.push([
      `p2p ${p2p.size / MiB} MiB, MB/s (median)`,
      `${oursRate.toFixed(0)} (${secs(ours)})`,
      `${rsRate.toFixed(0)} (${secs(rs)})`,
      ratio.toFixed(2),
      `>= ${TARGET_P2P_RATIO}`,
      verdict(ratio >= TARGET_P2P_RATIO),
    ]);
    const runs = present(p2p.trials.map((t) => t.ours));
    const adopt = median(runs.map((o) => o.adoptMs[0] ?? Number.NaN));
    const phase = (name: string) => median(runs.map((o) => o.phaseMs[0]?.get(name) ?? 0));
    notes.push(
      `p2p, where our time goes (medians): adoption (trigger -> session start) ${secs(adopt)}, fetching ${secs(phase("fetching"))} (${mbps(p2p.size, phase("fetching")).toFixed(0)} MB/s), verifying ${secs(phase("verifying"))}, committing ${secs(phase("committing"))}`,
    );
  }
  for (const { variant, trials } of fan) {
    const ones = present(trials.map((t) => t.one)).map((o) => o.totalMs);
    const fans = present(trials.map((t) => t.fan));
    const rsyncs = present(trials.map((t) => t.rsync));
    const one = median(ones);
    const total = median(fans.map((f) => f.totalMs));
    const copies = median(fans.map((f) => f.originSent / fanSize));
    const maxCopies = Math.max(...fans.map((f) => f.originSent / fanSize));
    const seq = median(rsyncs.map((r) => r.totalMs));
    const rsOne = median(rsyncs.flatMap((r) => r.each));
    const tag = `fan-out ${variant.label}`;
    rows.push([`${tag}: one transfer`, secs(one), `${secs(rsOne)} (one pull)`, (one / rsOne).toFixed(2), "", ""]);
    rows.push([
      `${tag}: all ${FANOUT_RECEIVERS} hold it`,
      secs(total),
      `${secs(seq)} (x${FANOUT_RECEIVERS} seq.)`,
      (total / seq).toFixed(2),
      "",
      "",
    ]);
    rows.push([
      `${tag}: fan-out / one transfer`,
      (total / one).toFixed(2),
      "",
      "",
      `<= ${TARGET_FANOUT_VS_ONE}`,
      verdict(total / one <= TARGET_FANOUT_VS_ONE),
    ]);
    rows.push([
      `${tag}: copies sent by origin`,
      `${copies.toFixed(2)} (max ${maxCopies.toFixed(2)})`,
      `${FANOUT_RECEIVERS}`,
      "",
      `<= ${TARGET_COPIES}`,
      verdict(maxCopies <= TARGET_COPIES),
    ]);
    const failed = trials.filter((t) => !t.one || !t.fan || !t.rsync).length;
    if (failed > 0) notes.push(`${tag}: ${failed} of ${trials.length} trials had a failed run (medians over the rest)`);
  }
  const widths = rows[0]?.map((_, k) => Math.max(...rows.map((r) => (r[k] ?? "").length))) ?? [];
  console.log(`\n== summary (medians; stagger = ${staggerMs} ms; MB = 10^6 bytes) ==`);
  for (const r of rows)
    console.log(
      r
        .map((cell, k) => cell.padEnd((widths[k] ?? 0) + 2))
        .join("")
        .trimEnd(),
    );
  for (const n of notes) console.log(n);
}

async function main(): Promise<number> {
  const { trials, only, sizeMiB, fanoutMiB, linkRate, staggerMs, links } = options();
  const missing = [await binMissing(), rsyncMissing()];
  for (const m of missing) if (m) console.error(`sync: ${m}`);
  if (missing.some((m) => m !== null)) return 1;
  installCleanup();

  console.log(`sync: ${binPath()} beside ${(await Bun.$`rsync --version`.text()).split("\n")[0]}`);
  console.log(
    `      ${trials} trial(s), interleaved; ours at 127.0.0.${OUR_FIRST_HOST}..., rsyncd at ${RSYNC_HOST}:${RSYNC_PORT}; ${availableParallelism()} CPU cores shared by every node and this process`,
  );
  console.log("      both read the same source file (hard-linked into the origin's folder), warm in the page cache");
  const srcDir = makeTempDir("bench-sync-src-");
  const big = { name: "big.bin", size: sizeMiB * MiB };
  const model = { name: "model.bin", size: fanoutMiB * MiB };
  if (only !== "fanout") writeRandomFile(join(srcDir, big.name), big.size);
  if (only !== "p2p") writeRandomFile(join(srcDir, model.name), model.size);
  const rsync = await startRsyncDaemon(srcDir, RSYNC_HOST, RSYNC_PORT);
  try {
    let p2p: { trials: P2pTrial[]; size: number } | null = null;
    if (only !== "fanout") {
      p2p = { trials: await pointToPoint(rsync, join(srcDir, big.name), big.name, big.size, trials), size: big.size };
    }
    const fan: { variant: Variant; trials: FanoutTrial[] }[] = [];
    if (only !== "p2p") {
      const variants = [
        { label: "unlimited", rate: 0 },
        { label: `links ${linkRate / MB} MB/s`, rate: linkRate },
      ].filter((v) => links === "both" || (links === "limited") === v.rate > 0);
      for (const variant of variants) {
        const r = await fanout(rsync, join(srcDir, model.name), model.name, model.size, trials, staggerMs, variant);
        fan.push({ variant, trials: r });
        await sleep(500);
      }
    }
    summarize(p2p, fan, model.size, staggerMs);
  } finally {
    await rsync.stop();
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  console.error(`sync: ${e instanceof Error ? e.message : e}`);
  process.exitCode = 1;
} finally {
  cleanupAll();
}
