/** A member that could relay for this node, as membership sees it. */
export interface RelayCandidate {
  id: string;
  address: string;
  alive: boolean;
  /** Behind NAT itself: no relay for others. */
  nat: boolean;
  /** The round trip this node's own probes measured to it (SWIM), or null before one was. */
  rttMs: number | null;
}

/**
 * The relays worth connecting to next, best first: live public members not held or waiting out a retry, nearest
 * by measured round trip (unmeasured last), then by how fast their lanes opened last time, then by id.
 */
export function rankRelays(
  candidates: readonly RelayCandidate[],
  skip: (id: string) => boolean,
  lastOpenMs: (id: string) => number | undefined,
): RelayCandidate[] {
  const rtt = (c: RelayCandidate) => c.rttMs ?? Number.POSITIVE_INFINITY;
  return candidates
    .filter((c) => c.alive && !c.nat && !skip(c.id))
    .sort(
      (a, b) =>
        rtt(a) - rtt(b) ||
        (lastOpenMs(a.id) ?? 0) - (lastOpenMs(b.id) ?? 0) ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
}
