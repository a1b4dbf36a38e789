import type { JobTemplate } from "../config/schema.ts";
import type { NodeInfo } from "../shared/node-info.ts";
import { headroom } from "./headroom.ts";
import type { Offer } from "./model.ts";

/** What a worker knows when its claim loop ticks; `L` is how it reaches the leader. */
export interface ClaimInputs<L> {
  nodeId: string;
  capabilities: readonly string[];
  jobs: Readonly<Record<string, JobTemplate>>;
  slots: number;
  busySlots: number;
  /** This node's latest resource sample (null before the first). */
  resources: NodeInfo | null;
  /** Where to send the claim (null while no leader is known). */
  leader: L | null;
}

/**
 * Whether to claim, how many items, and the offer: what fits the free slots and the resource sample.
 * A skip carries its reason when it is worth telling an operator (short of memory or CPU), null when it is
 * routine (no free slot, no leader, nothing this node runs).
 */
export type ClaimDecision<L> =
  | { claim: true; to: L; max: number; offer: Offer }
  | { claim: false; reason: string | null };

/** Types this node can run: a template in the cluster file and the capability on this node. */
export function runnableTypes(capabilities: readonly string[], jobs: Readonly<Record<string, JobTemplate>>): string[] {
  return capabilities.filter((c) => jobs[c]);
}

export function decideClaim<L>(i: ClaimInputs<L>): ClaimDecision<L> {
  const types = runnableTypes(i.capabilities, i.jobs);
  const free = i.slots - i.busySlots;
  if (types.length === 0 || free <= 0 || i.leader === null) return { claim: false, reason: null };
  const room = headroom(i.resources, types, i.jobs);
  if (!room.ok) return { claim: false, reason: room.reason };
  const info = i.resources;
  const offer: Offer = {
    node: i.nodeId,
    types: room.types,
    capabilities: [...i.capabilities],
    freeSlots: free,
    gpus: room.gpus.length,
    freeGpuMemoryGb: room.gpus.reduce((a, g) => a + Math.max(0, g.memoryTotalMb - g.memoryUsedMb), 0) / 1024,
    freeDiskGb: (info?.disk.freeBytes ?? 0) / 1024 ** 3,
    freeMemoryGb: (info?.memory.freeBytes ?? 0) / 1024 ** 3,
    slotsPerType: Object.fromEntries(Object.entries(i.jobs).map(([t, j]) => [t, j.slots])),
  };
  return { claim: true, to: i.leader, max: free, offer };
}
