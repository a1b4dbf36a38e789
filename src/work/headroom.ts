import type { JobTemplate } from "../config/schema.ts";
import type { GpuInfo, NodeInfo } from "../shared/node-info.ts";

/**
 * What this node can take on right now, from its own resource sample: the claim loop offers only
 * the types whose templates fit, and nothing while the machine is short of memory or CPU. Other
 * programs share these machines, so the sample, not just our own slot count, decides.
 */

/** Below this share of free memory a new job would push the machine into swap or the OOM killer. */
export const MIN_FREE_MEMORY_FRACTION = 0.05;
/** A one-minute load above this many times the CPU count means the CPUs are already oversubscribed. */
export const MAX_LOAD_PER_CPU = 4;
/** A GPU busier than this is in use by something else and is not offered. */
export const MAX_GPU_UTILIZATION_PCT = 90;

export type Headroom = { ok: true; types: string[]; gpus: GpuInfo[] } | { ok: false; reason: string };

const GIB = 1024 ** 3;

export function headroom(
  info: NodeInfo | null,
  types: readonly string[],
  templates: Readonly<Record<string, JobTemplate>>,
): Headroom {
  if (!info) return { ok: false, reason: "no resource sample yet" };
  const { memory, cpu } = info;
  if (memory.totalBytes > 0 && memory.freeBytes < memory.totalBytes * MIN_FREE_MEMORY_FRACTION) {
    return {
      ok: false,
      reason: `free memory ${(memory.freeBytes / GIB).toFixed(1)} GiB is under ${MIN_FREE_MEMORY_FRACTION * 100}% of ${(memory.totalBytes / GIB).toFixed(1)} GiB`,
    };
  }
  if (cpu.count > 0 && cpu.load1 > cpu.count * MAX_LOAD_PER_CPU) {
    return { ok: false, reason: `load ${cpu.load1.toFixed(1)} is over ${MAX_LOAD_PER_CPU}x the ${cpu.count} CPUs` };
  }
  const fitting = types.filter((t) => {
    const needs = templates[t]?.requires;
    return needs?.memory_gb === undefined || memory.freeBytes >= needs.memory_gb * GIB;
  });
  if (fitting.length === 0) return { ok: false, reason: "free memory fits none of this node's job types" };
  return { ok: true, types: fitting, gpus: info.gpus.filter((g) => g.utilizationPct < MAX_GPU_UTILIZATION_PCT) };
}
