/**
 * Relay benchmark: what reaching a node behind NAT through a relay costs, beside reaching the same node directly,
 * measured in the same run on loopback. n1 is a public voter (the relay), n2 has `nat = true` (peers route to it
 * through its relays; on loopback it also listens, so the direct path to it is the anchor), and this process is
 * the peer n3, signing its requests with the cluster secret.
 *
 *   1. Added latency: small signed requests (`GET /peer/manifest/blobs`), direct and relayed, interleaved;
 *      target: relayed p50 - direct p50 <= 2 ms.
 *   2. Throughput: a --size-mib file (default 256) fetched in 4 MiB pieces, 4 in flight, as data sync fetches,
 *      --transfers times each way (default 8), alternating; target: relayed >= 0.5x direct.
 *   3. Heartbeats behind bulk: the small request every 20 ms through the relay, from a peer process of its own
 *      (bench/relay/heartbeat.ts), with no transfer and then while the file moves at full speed through the same
 *      relay; target: p99 during the transfer within 2x of the idle p99.
 *   4. The same heartbeats while a transfer runs at the speed of a real link (--link-gbit, default 1), its bytes
 *      requested evenly in 512 KiB ranges, and for the relayed path also in 4 MiB bursts at loopback speed.
 *   5. The machine's floor for phase 3, no orchestrator: the same heartbeats to a minimal server
 *      (bench/relay/floor-server.ts) while it serves the same file at full speed, and to a second one that takes no
 *      part in the transfer.
 *
 *   bun bench/relay/run.ts [--size-mib 256] [--requests 2000] [--heartbeats 1000] [--transfers 8] [--link-gbit 1]
 *   P2P_BIN=path/to/p2p-orchestrator overrides dist/p2p-orchestrator.
 */
import { randomFillSync } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { deriveTiming } from "../../src/config/timing.ts";
import { TestCluster } from "../../tests/integration/harness.ts";
import { binMissing } from "../detect/ours.ts";
import { percentile, waitFor } from "../lib.ts";
import { peerGet } from "./peer-get.ts";

const { values } = parseArgs({
  options: {
    "size-mib": { type: "string", default: "256" },
    requests: { type: "string", default: "2000" },
    heartbeats: { type: "string", default: "1000" },
    transfers: { type: "string", default: "8" },
    "link-gbit": { type: "string", default: "1" },
  },
});
const MiB = 1024 * 1024;
const PIECE = 4 * MiB;
/** How a transfer at link speed is requested: a link's bytes come evenly, not a piece at loopback speed at once. */
const EVEN_RANGE = 512 * 1024;
/** The lan timing profile's probe deadline (roundTripMs), which the cluster here runs on. */
const PROBE_TIMEOUT_MS = deriveTiming("lan").probeTimeoutMs;
const sizeBytes = Number(values["size-mib"]) * MiB;
const requests = Number(values.requests);
/** Times the file is moved each way for the throughput, alternating. */
const transfers = Number(values.transfers);
/** Heartbeats under each transfer: the p99 of 200 (the 2nd-slowest) moved 2-19x between runs on a busy machine. */
const heartbeatSamples = Number(values.heartbeats);

const missing = await binMissing();
if (missing) {
  console.error(missing);
  process.exit(2);
}

const cluster = new TestCluster(3, {
  voters: 1,
  capabilities: () => ["bench"],
  nodeToml: (i) => (i === 1 ? "nat = true\n" : ""),
  extraToml: '[data.blobs]\npath = ".data/{id}/blobs"\nglobs = ["**"]\nto = "all"\n',
});
const secret = readFileSync(join(cluster.dir, "cluster.secret"), "utf8").trim();
const [relay, nat] = [cluster.node("n1"), cluster.node("n2")];

type Path = "direct" | "relayed";
/** Where heartbeats and a file's ranges go: n2 straight or through the relay n1, or a floor server. */
interface Target {
  name: string;
  address: string;
  relayed: boolean;
}
const targets: Record<Path, Target> = {
  direct: { name: "direct", address: nat.address, relayed: false },
  relayed: { name: "relayed", address: relay.address, relayed: true },
};
/** The floor servers (phase 5), stopped with the cluster. */
const floorServers: Array<Bun.Subprocess> = [];

/** One signed request from "n3" to n2 (or to a floor server, which ignores who signed it). */
function get(target: Target, pathWithQuery: string, headers: Record<string, string> = {}): Promise<Response> {
  return peerGet({ secret, address: target.address, relayed: target.relayed, pathWithQuery, headers });
}

/** A floor server for `file` (phase 5), once it tells its address. */
async function floorServer(name: string, file: string): Promise<Target> {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "floor-server.ts"), file], {
    stdout: "pipe",
    stderr: "inherit",
  });
  floorServers.push(proc);
  const first = await proc.stdout.getReader().read();
  const address = new TextDecoder().decode(first.value).trim();
  if (!/^127\.0\.0\.1:\d+$/.test(address)) throw new Error(`the floor server said ${JSON.stringify(address)}`);
  return { name, address, relayed: false };
}

/** SWIM sends n1 and n2 counted as unanswered so far (`p2p_swim_send_failures_total`, every kind). */
async function unansweredProbes(): Promise<number> {
  let total = 0;
  for (const node of [relay, nat]) {
    const res = await fetch(`http://${node.address}/metrics`, {
      headers: { authorization: `Bearer ${cluster.token}` },
      signal: AbortSignal.timeout(5_000),
    });
    for (const line of (await res.text()).split("\n")) {
      if (line.startsWith("p2p_swim_send_failures_total")) total += Number(line.split(" ").at(-1));
    }
  }
  return total;
}

/** CPU time (user + system) a process has used, in ms, where /proc tells it (Linux); null elsewhere. */
function cpuMs(pid: number | undefined): number | null {
  if (pid === undefined || !existsSync(`/proc/${pid}/stat`)) return null;
  // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th, in clock ticks (100/s).
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** `--heartbeats` round trips from the heartbeat peer, a process of its own; `finished` once it has them all. */
function heartbeats(target: Target): { done: Promise<number[]>; finished: () => boolean } {
  const how = target.relayed ? "relayed" : "direct";
  const proc = Bun.spawn(
    [process.execPath, join(import.meta.dir, "heartbeat.ts"), target.address, how, String(heartbeatSamples)],
    {
      env: { ...process.env, P2P_SECRET: secret },
      stdout: "pipe",
      stderr: "inherit",
    },
  );
  let finished = false;
  const done = (async () => {
    const text = await new Response(proc.stdout).text();
    finished = true;
    if ((await proc.exited) !== 0) throw new Error(`the ${target.name} heartbeat peer failed`);
    return text.trim().split("\n").map(Number);
  })();
  return { done, finished: () => finished };
}

async function timedSmall(path: Path): Promise<number> {
  const t0 = performance.now();
  await (await get(targets[path], "/peer/manifest/blobs")).arrayBuffer();
  return performance.now() - t0;
}

/** How a transfer is paced: `MBps` on average, in ranges of `rangeBytes` requested evenly over time. */
interface Pace {
  MBps: number;
  rangeBytes: number;
}

/** The whole file in ranges (pieces unless paced otherwise), 4 in flight, each no sooner than `pace` allows; MB/s. */
async function fetchFile(target: Target, sha: string, pace?: Pace): Promise<number> {
  const step = pace?.rangeBytes ?? PIECE;
  const ranges = Math.ceil(sizeBytes / step);
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    for (let i = next++; i < ranges; i = next++) {
      const due = pace ? t0 + (i * step) / pace.MBps / 1000 : 0;
      if (due > performance.now()) await Bun.sleep(due - performance.now());
      const range = `bytes=${i * step}-${Math.min(sizeBytes, (i + 1) * step) - 1}`;
      const body = await (await get(target, `/peer/files/${sha}`, { range })).arrayBuffer();
      if (body.byteLength !== Math.min(step, sizeBytes - i * step))
        throw new Error(`range ${i}: ${body.byteLength} bytes`);
    }
  };
  await Promise.all([lane(), lane(), lane(), lane()]);
  return sizeBytes / 1e6 / ((performance.now() - t0) / 1000);
}

try {
  const dir = join(cluster.dir, ".data", "n2", "blobs");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "big.bin");
  const fd = openSync(file, "w");
  const chunk = new Uint8Array(8 * MiB);
  for (let done = 0; done < sizeBytes; done += chunk.byteLength) {
    randomFillSync(chunk);
    writeSync(fd, chunk, 0, Math.min(chunk.byteLength, sizeBytes - done));
  }
  // On disk before anything is timed: its write-back otherwise lands in the idle heartbeats half a minute later.
  fsyncSync(fd);
  closeSync(fd);
  cluster.start("n1");
  cluster.start("n2");
  await waitFor(
    async () => {
      const s = (await cluster.get("n1", "/status").catch(() => null)) as {
        peers: Array<{ id: string; resources?: { relays?: string[] } | null }>;
      } | null;
      return s?.peers.find((p) => p.id === "n2")?.resources?.relays?.includes("n1") ?? false;
    },
    30_000,
    "n2 relayed by n1",
  );
  let sha = "";
  await waitFor(
    async () => {
      const m = (await cluster.get("n2", "/manifest?category=blobs").catch(() => null)) as {
        files: Array<{ path: string; sha256: string }>;
      } | null;
      sha = m?.files.find((f) => f.path === "big.bin")?.sha256 ?? "";
      return sha !== "";
    },
    120_000,
    "the file indexed on n2",
  );

  // 1. Added latency, interleaved so both paths see the same machine.
  const lat: Record<Path, number[]> = { direct: [], relayed: [] };
  for (let i = 0; i < 100; i++) await timedSmall(i % 2 ? "direct" : "relayed");
  for (let i = 0; i < requests; i++) {
    const path: Path = i % 2 ? "direct" : "relayed";
    lat[path].push(await timedSmall(path));
  }
  const p50 = (p: Path) => percentile(lat[p], 50);
  const added = p50("relayed") - p50("direct");
  console.log(
    `small request (${requests / 2} each): direct p50 ${p50("direct").toFixed(2)} ms, p99 ${percentile(lat.direct, 99).toFixed(2)} ms`,
  );
  console.log(
    `                            relayed p50 ${p50("relayed").toFixed(2)} ms, p99 ${percentile(lat.relayed, 99).toFixed(2)} ms`,
  );
  console.log(`  added by the relay at p50: ${added.toFixed(2)} ms (target <= 2 ms)`);

  // 2. Throughput: the file moved alternately direct and relayed, so a drift in the machine's speed falls on both.
  const cpu = () => ({ relay: cpuMs(relay.proc?.pid), nat: cpuMs(nat.proc?.pid) });
  const cpuKnown = cpu().relay !== null && cpu().nat !== null;
  const moved: Record<Path, { rates: number[]; relayCpu: number; natCpu: number }> = {
    direct: { rates: [], relayCpu: 0, natCpu: 0 },
    relayed: { rates: [], relayCpu: 0, natCpu: 0 },
  };
  for (let i = 0; i < transfers; i++) {
    for (const path of i % 2 ? (["relayed", "direct"] as const) : (["direct", "relayed"] as const)) {
      const before = cpu();
      moved[path].rates.push(await fetchFile(targets[path], sha));
      const after = cpu();
      moved[path].relayCpu += (after.relay ?? 0) - (before.relay ?? 0);
      moved[path].natCpu += (after.nat ?? 0) - (before.nat ?? 0);
    }
  }
  const mean = (path: Path) => moved[path].rates.reduce((x, y) => x + y, 0) / transfers;
  // CPU per 100 MB moved: where the transfer's time goes (a heartbeat waits for the same two cores).
  const per100MB = (ms: number) =>
    cpuKnown ? `${((ms / ((transfers * sizeBytes) / 1e6)) * 100).toFixed(0)} ms` : "n/a";
  const cpuLine = (path: Path) =>
    `relay (n1) ${per100MB(moved[path].relayCpu)}, node (n2) ${per100MB(moved[path].natCpu)}`;
  console.log(
    `${values["size-mib"]} MiB in 4 MiB pieces, 4 in flight, ${transfers} times each way, alternating: direct ${mean("direct").toFixed(0)} MB/s, relayed ${mean("relayed").toFixed(0)} MB/s`,
  );
  console.log(`  relayed / direct: ${(mean("relayed") / mean("direct")).toFixed(2)}x (target >= 0.5x)`);
  console.log(`  CPU per 100 MB: direct: ${cpuLine("direct")}; relayed: ${cpuLine("relayed")}`);

  // 3. Heartbeats on each path while its transfers run (repeated until the heartbeats have --heartbeats samples for
  // a p99), beside the same heartbeats with no transfer. The direct path's own heartbeats under its transfer show
  // what the node does without a relay; phase 5 shows what the machine does with no orchestrator at all.
  const idle = new Map<Target, number[]>();
  for (const target of [targets.direct, targets.relayed]) idle.set(target, await heartbeats(target).done);
  /** Heartbeats to `beatAt` while the file moves from `moveFrom` over and over until they are all in. */
  const underLoad = async (beatAt: Target, moveFrom: Target, pace?: Pace) => {
    const unanswered0 = await unansweredProbes();
    const beating = heartbeats(beatAt);
    while (!beating.finished()) await fetchFile(moveFrom, sha, pace);
    const during = await beating.done;
    return { beatAt, during, unanswered: (await unansweredProbes()) - unanswered0 };
  };
  type Run = Awaited<ReturnType<typeof underLoad>>;
  const ratio = (run: Run) => percentile(run.during, 99) / percentile(idle.get(run.beatAt) ?? [], 99);
  const heartbeatLine = (run: Run, under: string) => {
    const before = idle.get(run.beatAt) ?? [];
    const busy99 = percentile(run.during, 99);
    const p50s = `p50 ${percentile(before, 50).toFixed(2)} -> ${percentile(run.during, 50).toFixed(2)} ms`;
    console.log(
      `heartbeat ${run.beatAt.name}: idle p99 ${percentile(before, 99).toFixed(2)} ms, ${under} p99 ${busy99.toFixed(2)} ms (${p50s}, ${run.during.length} samples each): ${ratio(run).toFixed(2)}x${run.beatAt.relayed ? " (target <= 2x)" : ""}`,
    );
    console.log(
      `  slowest ${Math.max(...run.during).toFixed(1)} ms; SWIM probes between n1 and n2 unanswered meanwhile: ${run.unanswered} (probe timeout ${PROBE_TIMEOUT_MS} ms)`,
    );
  };
  const direct = await underLoad(targets.direct, targets.direct);
  const relayed = await underLoad(targets.relayed, targets.relayed);
  heartbeatLine(direct, "during its transfer at full speed");
  heartbeatLine(relayed, "during its transfer at full speed");

  // 4. The same heartbeats behind a transfer at the speed of a real link (loopback at full speed is bound by the two
  // cores that the bench, the relay and the node share, not by a network). A link delivers its bytes evenly: here
  // 512 KiB ranges at even intervals. Beside it, for the relayed path, the same rate in whole 4 MiB pieces each
  // moved at loopback speed, bursts a real link does not make (each takes the two cores for a few ms).
  const linkMBps = (Number(values["link-gbit"]) * 1000) / 8;
  const link = `a ${values["link-gbit"]} Gbit/s link (${linkMBps.toFixed(0)} MB/s`;
  const even = { MBps: linkMBps, rangeBytes: EVEN_RANGE };
  const pacedDirect = await underLoad(targets.direct, targets.direct, even);
  const pacedRelayed = await underLoad(targets.relayed, targets.relayed, even);
  const bursts = await underLoad(targets.relayed, targets.relayed, { MBps: linkMBps, rangeBytes: PIECE });
  heartbeatLine(pacedDirect, `during its transfer over ${link} in 512 KiB ranges)`);
  heartbeatLine(pacedRelayed, `during its transfer over ${link} in 512 KiB ranges)`);
  heartbeatLine(bursts, `during its transfer over ${link} in 4 MiB bursts)`);

  // 5. The floor under phase 3: what this machine does to a small request while the file moves at full speed, with
  // no orchestrator in the way. The same heartbeats go to a minimal server serving the file (the kernel sends its
  // bytes), and to a second one taking no part in the transfer.
  const floor = await floorServer("floor (a minimal server serving the file)", file);
  const bystander = await floorServer("floor (a minimal server taking no part)", file);
  for (const target of [floor, bystander]) idle.set(target, await heartbeats(target).done);
  const floorRun = await underLoad(floor, floor);
  const bystanderRun = await underLoad(bystander, floor);
  heartbeatLine(floorRun, "during its transfer at full speed");
  heartbeatLine(bystanderRun, "during the other's transfer at full speed");
  console.log(
    `  relayed at full speed against the floor: ${ratio(relayed).toFixed(2)}x idle against ${ratio(floorRun).toFixed(2)}x (serving) and ${ratio(bystanderRun).toFixed(2)}x (no part); direct ${ratio(direct).toFixed(2)}x`,
  );
} finally {
  for (const proc of floorServers) proc.kill("SIGKILL");
  await cluster.stop();
}
