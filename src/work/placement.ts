import type { Offer, WorkItem } from "./model.ts";

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
  if (r.gpuMemoryGb > offer.freeGpuMemoryGb) {
    reasons.push(`needs ${r.gpuMemoryGb} GB GPU memory, ${offer.freeGpuMemoryGb.toFixed(1)} GB free`);
  }
  if (r.diskGb > offer.freeDiskGb) reasons.push(`needs ${r.diskGb} GB disk, ${offer.freeDiskGb.toFixed(1)} GB free`);
  const slots = offer.slotsPerType[item.type] ?? 1;
  if (slots > offer.freeSlots) reasons.push(`busy: needs ${slots} slot(s), ${offer.freeSlots} free`);
  return reasons;
}
