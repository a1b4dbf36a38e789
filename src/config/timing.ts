/**
 * Every timing in the node derives from three base values of a profile, so the whole
 * cluster computes the same deadlines (one liveness rule) and an operator tunes one knob.
 */
export interface TimingBase {
  /** SWIM protocol period: one probe per period. */
  readonly periodMs: number;
  /** The longest round trip a healthy peer takes to answer. */
  readonly roundTripMs: number;
  /** How many periods a suspect has to refute before it is declared dead. */
  readonly suspicionPeriods: number;
}

export const TIMING_PROFILES = {
  lan: { periodMs: 500, roundTripMs: 200, suspicionPeriods: 8 },
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
  readonly suspicionTimeoutMs: number;
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
  };
}
