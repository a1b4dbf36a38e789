/**
 * Whether this node should take relays though its cluster file does not say it is behind NAT: it reaches its peers
 * (some are alive to it, so its own calls out work), yet none of them has reached it directly for a while, though
 * membership alone sends every node several requests each protocol period.
 */
export function unreachable(opts: {
  now: number;
  startedAt: number;
  /** When a peer's request last arrived directly (not through a relay); null: never. */
  lastInboundAt: number | null;
  alivePeers: number;
  /** How long without a direct request counts as unreachable (and how long after start before judging). */
  silenceMs: number;
}): boolean {
  if (opts.alivePeers === 0 || opts.now - opts.startedAt < opts.silenceMs) return false;
  return opts.now - (opts.lastInboundAt ?? opts.startedAt) >= opts.silenceMs;
}
