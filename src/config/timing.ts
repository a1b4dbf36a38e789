/**
 * Every timing in the node derives from three base values of a profile, so the whole
 * cluster computes the same deadlines (one liveness rule) and an operator tunes one knob.
 */
export interface TimingBase {
  /** SWIM protocol period: one probe per period. */
  readonly periodMs: number;
  /** The longest round trip a healthy peer takes to answer. */
  readonly roundTripMs: number;
  /**
   * How many periods a suspect has to refute once other members confirm the suspicion (Lifeguard's minimum, as
   * memberlist's SuspicionMult; for up to 10 members, scaled by log10 of the size above). It is also the
   * longest stall a peer survives, less the probe timeout: the detection time of a dead peer cannot go under it.
   */
  readonly suspicionPeriods: number;
}

export const TIMING_PROFILES = {
  lan: { periodMs: 500, roundTripMs: 200, suspicionPeriods: 4 },
  wan: { periodMs: 2_000, roundTripMs: 800, suspicionPeriods: 10 },
} as const satisfies Record<string, TimingBase>;

export type TimingProfileName = keyof typeof TIMING_PROFILES;

export interface Timing extends TimingBase {
  readonly profile: TimingProfileName;
  /** How often the runtime calls the membership core's tick; a tick arriving much later reveals a stall. */
  readonly tickMs: number;
  readonly probeIntervalMs: number;
  /** Direct probe deadline; past it, k peers are asked to probe indirectly. */
  readonly probeTimeoutMs: number;
  /** Deadline of the whole probe (direct and indirect); past it the target is suspected. */
  readonly indirectProbeTimeoutMs: number;
  readonly indirectProbes: number;
  readonly gossipIntervalMs: number;
  readonly gossipFanout: number;
  /** The suspicion timeout once confirmed (the minimum), for up to 10 members; see membership/suspicion.ts. */
  readonly suspicionTimeoutMs: number;
  /** A suspicion nobody confirms lasts this many times the minimum (memberlist's SuspicionMaxTimeoutMult). */
  readonly suspicionMaxMultiplier: number;
  /** Independent confirmations that bring the timeout down to its minimum (fewer where fewer members can). */
  readonly suspicionConfirmations: number;
  readonly pushPullIntervalMs: number;
  /** How often a dead peer is tried again, so a healed partition merges. */
  readonly reconnectIntervalMs: number;
  /** Dead peers stop being retried after this long. */
  readonly retireAfterMs: number;
  /** Retired (dead or left) peers are forgotten after this long. */
  readonly purgeAfterMs: number;
  readonly joinRetryMinMs: number;
  readonly joinRetryMaxMs: number;
  readonly syncTimeoutMs: number;
  readonly resourceSampleMs: number;
  /** A timer firing this late means our own process stalled: its probe failures are not evidence. */
  readonly localStallMs: number;
  /** Signed peer requests older or newer than this are refused. */
  readonly clockSkewMs: number;
  readonly traceFlushMs: number;
  /** Raft: leader heartbeat (AppendEntries) interval. */
  readonly heartbeatMs: number;
  /** Raft: election timeouts are drawn uniformly from [min, max). */
  readonly electionMinMs: number;
  readonly electionMaxMs: number;
  /** Raft: clocks may run this much faster or slower than real time (fraction). */
  readonly clockDrift: number;
  /** Raft: how long a majority's acknowledgement lets the leader act; under the election minimum less drift. */
  readonly leaseMs: number;
  /** Raft: an AppendEntries unanswered this long is treated as lost. */
  readonly appendTimeoutMs: number;
  /** Work: a claim's lease; a worker that does not renew it within this long loses the item. */
  readonly workLeaseMs: number;
  /** Work: how often a worker renews its leases (a third of the lease, so two renewals may be lost). */
  readonly workHeartbeatMs: number;
  /** Work: how often an idle worker asks for work, and the leader checks for expired leases. */
  readonly workPollMs: number;
  /** Runs: how often the leader looks at each training run (queues self-play, trains, gates, decides). */
  readonly runTickMs: number;
  /** Data sync: how often peers' manifests are compared with ours and transfers planned. */
  readonly dataSyncRoundMs: number;
  readonly manifestTimeoutMs: number;
  /** Deadline for one piece (PIECE_BYTES) from one peer. */
  readonly pieceTimeoutMs: number;
  readonly pieceMapRefreshMs: number;
}

export function deriveTiming(profile: TimingProfileName, base: TimingBase = TIMING_PROFILES[profile]): Timing {
  const { periodMs, roundTripMs, suspicionPeriods } = base;
  if (!(roundTripMs * 2 < periodMs)) throw new Error("timing: roundTripMs must be under half of periodMs");
  return {
    profile,
    ...base,
    tickMs: Math.max(10, Math.round(periodMs / 10)),
    probeIntervalMs: periodMs,
    probeTimeoutMs: roundTripMs,
    indirectProbeTimeoutMs: Math.round(periodMs * 0.9),
    indirectProbes: 3,
    gossipIntervalMs: Math.max(50, Math.round(periodMs / 2.5)),
    gossipFanout: 3,
    suspicionTimeoutMs: periodMs * suspicionPeriods,
    suspicionMaxMultiplier: 6,
    suspicionConfirmations: 3,
    pushPullIntervalMs: periodMs * 30,
    reconnectIntervalMs: periodMs * 20,
    retireAfterMs: 3_600_000,
    purgeAfterMs: 24 * 3_600_000,
    joinRetryMinMs: periodMs,
    joinRetryMaxMs: periodMs * 20,
    syncTimeoutMs: roundTripMs * 5,
    resourceSampleMs: Math.max(1_000, periodMs * 10),
    localStallMs: Math.round(periodMs / 2),
    clockSkewMs: 30_000,
    traceFlushMs: 250,
    ...deriveRaftTiming(roundTripMs),
    workLeaseMs: periodMs * 60,
    workHeartbeatMs: periodMs * 20,
    workPollMs: periodMs * 2,
    runTickMs: Math.round(periodMs / 2),
    dataSyncRoundMs: Math.round(periodMs / 2),
    manifestTimeoutMs: roundTripMs * 25,
    pieceTimeoutMs: roundTripMs * 150,
    pieceMapRefreshMs: Math.round(periodMs / 2),
  };
}

/**
 * Raft timings from the round trip between voters: elections wait at least 2.5 round trips (the WAN
 * profile's measured round trips give 10x and more), heartbeats a tenth of that, the lease a little
 * under the election minimum so a deposed leader stops before a successor can be elected.
 */
export function deriveRaftTiming(roundTripMs: number) {
  const electionMinMs = Math.round(roundTripMs * 2.5);
  const clockDrift = 0.05;
  return {
    heartbeatMs: Math.max(10, Math.round(electionMinMs / 10)),
    electionMinMs,
    electionMaxMs: electionMinMs * 2,
    clockDrift,
    leaseMs: Math.floor(electionMinMs * (1 - 2 * clockDrift) - Math.max(10, electionMinMs / 10)),
    appendTimeoutMs: Math.max(50, Math.round(electionMinMs / 2)),
  };
}

/**
 * The election window for the round trips measured to the voters: at least ten round trips (so a
 * cluster spread over providers does not flap), never below the profile's. The lease is not derived
 * from it: it stays under the profile's minimum, which every voter's window exceeds.
 */
export function electionWindow(timing: Timing, voterRttsMs: readonly number[]): { minMs: number; maxMs: number } {
  const worst = Math.max(0, ...voterRttsMs);
  const minMs = Math.max(timing.electionMinMs, Math.ceil(worst * 10));
  return { minMs, maxMs: minMs * 2 };
}
