import { readFile, statfs } from "node:fs/promises";
import { availableParallelism, freemem, loadavg, totalmem } from "node:os";
import type { GpuInfo, NodeInfo } from "../shared/node-info.ts";

/** The parts of NodeInfo that don't change between samples. */
export interface StaticNodeFacts {
  version: string;
  capabilities: readonly string[];
  slots: number;
  voter: boolean;
  nat: boolean;
  dataDir: string;
}

const NVIDIA_SMI_CMD = [
  "nvidia-smi",
  "--query-gpu=name,memory.total,memory.used,utilization.gpu",
  "--format=csv,noheader,nounits",
];
const GPU_TIMEOUT_MS = 5_000;
const GPU_MAX_FAILURES = 3;
/** nodeInfoSchema accepts at most this many. */
const MAX_GPUS = 16;

/** Parses `nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(csv: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of csv.split("\n")) {
    if (line.trim() === "") continue;
    // Take the numbers from the end so a name containing a comma still parses.
    const fields = line.split(",").map((f) => f.trim());
    if (fields.length < 4) continue;
    const [util, used, total] = [fields.pop(), fields.pop(), fields.pop()];
    gpus.push({
      name: fields.join(",").slice(0, 128),
      memoryTotalMb: toNumber(total),
      memoryUsedMb: toNumber(used),
      utilizationPct: toNumber(util),
    });
  }
  return gpus;
}

/** nvidia-smi prints "[N/A]" / "[Not Supported]" for values a GPU doesn't report. */
function toNumber(s: string | undefined): number {
  const n = Number(s);
  return s !== undefined && s !== "" && Number.isFinite(n) ? n : 0;
}

/** Bytes of MemAvailable from /proc/meminfo, or null if absent. */
export function parseMemAvailable(meminfo: string): number | null {
  const m = /^MemAvailable:\s+(\d+)\s*kB\s*$/m.exec(meminfo);
  return m?.[1] === undefined ? null : Number(m[1]) * 1024;
}

// os.freemem() excludes reclaimable page cache, which makes a busy Linux box look full.
async function freeMemoryBytes(): Promise<number> {
  if (process.platform === "linux") {
    try {
      const available = parseMemAvailable(await readFile("/proc/meminfo", "utf8"));
      if (available !== null) return available;
    } catch {
      // fall through
    }
  }
  return freemem();
}

async function diskBytes(dataDir: string): Promise<NodeInfo["disk"]> {
  try {
    const s = await statfs(dataDir);
    return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
  } catch {
    // Report no disk rather than failing the whole sample; the scheduler then places nothing here.
    return { totalBytes: 0, freeBytes: 0 };
  }
}

let nvidiaSmiPath: string | null | undefined;
let gpuFailures = 0;
let gpuInFlight: Promise<GpuInfo[]> | null = null;

function gpus(): Promise<GpuInfo[]> {
  if (nvidiaSmiPath === undefined) nvidiaSmiPath = Bun.which("nvidia-smi");
  if (nvidiaSmiPath === null || gpuFailures >= GPU_MAX_FAILURES) return Promise.resolve([]);
  // Concurrent samples share one nvidia-smi run instead of each spawning their own.
  gpuInFlight ??= queryNvidiaSmi().finally(() => {
    gpuInFlight = null;
  });
  return gpuInFlight;
}

async function queryNvidiaSmi(): Promise<GpuInfo[]> {
  const result = await runNvidiaSmi();
  if (result === null) {
    gpuFailures++;
    return [];
  }
  gpuFailures = 0;
  return result;
}

async function runNvidiaSmi(): Promise<GpuInfo[] | null> {
  let proc: Bun.Subprocess<"ignore", "pipe", "ignore">;
  try {
    proc = Bun.spawn(NVIDIA_SMI_CMD, { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  } catch {
    return null;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Race rather than rely on the kill alone: a wedged driver can leave nvidia-smi unkillable.
  const deadline = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      proc.kill("SIGKILL");
      resolve(null);
    }, GPU_TIMEOUT_MS);
  });
  const run = (async () => {
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    return code === 0 ? parseNvidiaSmi(out) : null;
  })().catch(() => null);
  try {
    return await Promise.race([run, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Samples this node's current resources without blocking the event loop. */
export async function sampleResources(facts: StaticNodeFacts, now: () => number = Date.now): Promise<NodeInfo> {
  const [freeBytes, disk, gpuList] = await Promise.all([freeMemoryBytes(), diskBytes(facts.dataDir), gpus()]);
  return {
    version: facts.version,
    capabilities: [...facts.capabilities],
    slots: facts.slots,
    voter: facts.voter,
    nat: facts.nat,
    cpu: { count: availableParallelism(), load1: Math.round((loadavg()[0] ?? 0) * 100) / 100 },
    memory: { totalBytes: totalmem(), freeBytes: Math.min(freeBytes, totalmem()) },
    disk,
    gpus: gpuList.slice(0, MAX_GPUS),
    sampledAt: now(),
  };
}
