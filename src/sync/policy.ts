import type { DataCategory } from "../config/load.ts";

/**
 * Who should hold which files: pure functions of the cluster file's categories and the nodes'
 * capabilities, so every node reaches the same answer without asking anyone.
 */

export function holdsCategory(category: Pick<DataCategory, "to">, capabilities: readonly string[]): boolean {
  if (category.to === "all") return true;
  if (category.to === "none") return false;
  return category.to.some((c) => capabilities.includes(c));
}

/**
 * A stable 32-bit hash, the same on every node and platform: FNV-1a, then MurmurHash3's finaliser so
 * that names differing only in their last character still land far apart.
 */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The nodes that want one file, in a per-file order every node computes alike (rendezvous hashing):
 * it spreads the swarm's first receivers and each node's adoption delay across files.
 */
export function receiverOrder(sha256: string, nodeIds: readonly string[]): string[] {
  return [...nodeIds].sort((a, b) => fnv1a(`${sha256}/${a}`) - fnv1a(`${sha256}/${b}`) || a.localeCompare(b));
}

/** How long this node waits before adopting a new file: its place in the order, spread over the window. */
export function staggerDelayMs(sha256: string, nodeId: string, receivers: readonly string[], windowMs: number): number {
  if (windowMs <= 0) return 0;
  const order = receiverOrder(sha256, receivers);
  const rank = Math.max(0, order.indexOf(nodeId));
  return Math.floor((rank * windowMs) / Math.max(1, order.length));
}

/**
 * Which pieces of a swarm file this node may take from the origins (the nodes that held the file
 * before it spread): all of them for the file's first receiver in the order, and for each later
 * receiver its own share of the pieces (piece index modulo the later receivers), so a fresh piece
 * leaves an origin at most twice; the rest come from the receivers, finished or in progress.
 */
export function originShare(sha256: string, nodeId: string, receivers: readonly string[]): (piece: number) => boolean {
  const order = receiverOrder(sha256, receivers);
  const rank = order.indexOf(nodeId);
  if (rank <= 0) return () => true;
  const later = order.length - 1;
  return (piece) => piece % later === rank - 1;
}
