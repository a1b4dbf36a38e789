/**
 * Lifeguard's dynamic suspicion timeout (as in hashicorp/memberlist): a suspicion starts at its maximum and
 * shrinks logarithmically toward its minimum as other members independently confirm it (each suspect message
 * from a member not counted yet), reaching the minimum at `expected` confirmations. One member that cannot
 * reach a peer waits long; many that cannot agree quickly. Nothing here is faster than the minimum, which is
 * what a stalled peer has to wake up and refute.
 */
export interface SuspicionBounds {
  readonly minMs: number;
  readonly maxMs: number;
  /** Confirmations at which the timeout reaches its minimum; 0 (nobody could confirm) starts at the minimum. */
  readonly expected: number;
}

/** The timeout after `confirmations` independent confirmations, measured from the start of the suspicion. */
export function suspicionTimeoutMs(confirmations: number, bounds: SuspicionBounds): number {
  const { minMs, maxMs, expected } = bounds;
  if (expected < 1) return minMs;
  const fraction = Math.log(confirmations + 1) / Math.log(expected + 1);
  return Math.max(minMs, Math.floor(maxMs - fraction * (maxMs - minMs)));
}

/**
 * The bounds for a suspicion among `clusterSize` members (ourselves and the suspect included), from the
 * profile's minimum for up to 10 members: it grows with log10 of the size, as the time gossip needs to reach
 * everyone does. The members that can confirm are all but the suspect and the first suspector.
 */
export function suspicionBounds(
  clusterSize: number,
  timing: { suspicionTimeoutMs: number; suspicionMaxMultiplier: number; suspicionConfirmations: number },
): SuspicionBounds {
  const minMs = Math.round(timing.suspicionTimeoutMs * Math.max(1, Math.log10(Math.max(1, clusterSize))));
  return {
    minMs,
    maxMs: minMs * timing.suspicionMaxMultiplier,
    expected: Math.max(0, Math.min(timing.suspicionConfirmations, clusterSize - 2)),
  };
}

/** One suspicion of one member: who has confirmed it, and when it expires. */
export class Suspicion {
  private readonly confirmedBy = new Set<string>();
  /** Time our own process lost to stalls while this suspicion ran; the suspect gets it back. */
  private stalledMs = 0;

  constructor(
    readonly startedAt: number,
    /** The member whose suspicion we heard first (or ourselves); it does not confirm itself. */
    readonly suspector: string,
    readonly bounds: SuspicionBounds,
  ) {}

  get confirmations(): number {
    return this.confirmedBy.size;
  }

  /** Counts `by` once, up to the expected number; returns whether it was a new confirmation. */
  confirm(by: string): boolean {
    if (by === this.suspector || this.confirmedBy.has(by)) return false;
    if (this.confirmedBy.size >= this.bounds.expected) return false;
    this.confirmedBy.add(by);
    return true;
  }

  extend(ms: number): void {
    this.stalledMs += ms;
  }

  get timeoutMs(): number {
    return suspicionTimeoutMs(this.confirmedBy.size, this.bounds);
  }

  get deadline(): number {
    return this.startedAt + this.timeoutMs + this.stalledMs;
  }
}
