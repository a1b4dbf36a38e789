import type { NodeInfo } from "../shared/node-info.ts";
import type { Offer, WorkItem } from "./model.ts";

const GIB = 1024 ** 3;

/**
 * Whether a node's offer can take an item, and if not, every reason why: the same rules decide claims
 * (inside the replicated apply, so they must be pure) and answer "why is this item pending".
 */
export function misfits(item: Pick<WorkItem, "type" | "requirements">, offer: Offer, now: number): string[] {
  const r = item.requirements;
  const reasons: string[] = [];
  if (!offer.types.includes(item.type)) reasons.push(`no executor for type "${item.type}"`);
  const missing = r.capabilities.filter((c) => !offer.capabilities.includes(c));
  if (missing.length > 0) reasons.push(`no capability ${missing.join(", ")}`);
  if (r.excludeNodes.includes(offer.node)) reasons.push("excluded by the item");
  if (r.node && r.node.id !== offer.node && (r.node.until === undefined || now < r.node.until)) {
    reasons.push(`targets node ${r.node.id}`);
  }
  if (r.gpu && offer.gpus === 0) reasons.push("no GPU");
  if (r.preferGpuUntil !== undefined && offer.gpus === 0 && now < r.preferGpuUntil) {
    reasons.push(`held for a node with a GPU for ${Math.ceil((r.preferGpuUntil - now) / 1000)} s more`);
  }
  if (r.gpuMemoryGb > offer.freeGpuMemoryGb) {
    reasons.push(`needs ${r.gpuMemoryGb} GB GPU memory, ${offer.freeGpuMemoryGb.toFixed(1)} GB free`);
  }
  if (r.diskGb > offer.freeDiskGb) reasons.push(`needs ${r.diskGb} GB disk, ${offer.freeDiskGb.toFixed(1)} GB free`);
  if (offer.freeMemoryGb !== undefined && r.memoryGb > offer.freeMemoryGb) {
    reasons.push(`needs ${r.memoryGb} GB memory, ${offer.freeMemoryGb.toFixed(1)} GB free`);
  }
  const slots = offer.slotsPerType[item.type] ?? 1;
  if (slots > offer.freeSlots) reasons.push(`busy: needs ${slots} slot(s), ${offer.freeSlots} free`);
  return reasons;
}

/**
 * Why a node could never take an item, however idle it became: what it runs and what it has in all,
 * not what is free now. `memoryGb` is the item's need or its type's template's, whichever is more.
 */
export function neverFits(
  item: Pick<WorkItem, "type" | "requirements">,
  node: { id: string; info: NodeInfo; runs: readonly string[] },
  memoryGb: number,
): string[] {
  const r = item.requirements;
  const { info } = node;
  const reasons: string[] = [];
  if (!node.runs.includes(item.type)) reasons.push(`does not run type "${item.type}"`);
  const missing = r.capabilities.filter((c) => !info.capabilities.includes(c));
  if (missing.length > 0) reasons.push(`no capability ${missing.join(", ")}`);
  if (r.excludeNodes.includes(node.id)) reasons.push("excluded by the item");
  if (r.node && r.node.until === undefined && r.node.id !== node.id) reasons.push(`the item targets node ${r.node.id}`);
  if (r.gpu && info.gpus.length === 0) reasons.push("no GPU");
  const gpuMemoryGb = info.gpus.reduce((a, g) => a + g.memoryTotalMb, 0) / 1024;
  if (r.gpuMemoryGb > gpuMemoryGb)
    reasons.push(`needs ${r.gpuMemoryGb} GB GPU memory, has ${gpuMemoryGb.toFixed(1)} GB`);
  // A total of 0 is a size the sample could not read, not an empty disk.
  const diskGb = info.disk.totalBytes / GIB;
  if (diskGb > 0 && r.diskGb > diskGb) reasons.push(`needs ${r.diskGb} GB disk, has ${diskGb.toFixed(1)} GB`);
  const totalMemoryGb = info.memory.totalBytes / GIB;
  if (totalMemoryGb > 0 && memoryGb > totalMemoryGb)
    reasons.push(`needs ${memoryGb} GB memory, has ${totalMemoryGb.toFixed(1)} GB`);
  return reasons;
}
