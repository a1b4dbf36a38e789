import { electionWindow, type Timing } from "../config/timing.ts";

/** Who leads, as far as this node can tell, and where to reach it (null where no address is known). */
export interface LeaderHint {
  id: string;
  address: string | null;
  term: number;
}

/** A member as the membership view holds it: its state, where it listens, and the leader it last gossiped. */
export interface GossipedMember {
  id: string;
  address: string;
  state: string;
  leader?: { id: string; term: number } | null;
}

/**
 * The leader to point a caller at: a voter knows it from Raft; a non-voter takes the newest term any live
 * member gossips. The address is Raft's for a voter, else the membership view's.
 */
export function leaderHint(
  known: { id: string; term: number } | null,
  members: readonly GossipedMember[],
  raftAddressOf: (id: string) => string | null,
): LeaderHint | null {
  let best = known;
  if (!best) {
    for (const m of members) {
      const l = m.state === "alive" ? m.leader : null;
      if (l && (!best || l.term > best.term)) best = l;
    }
  }
  if (!best) return null;
  const { id, term } = best;
  return { id, term, address: raftAddressOf(id) ?? members.find((m) => m.id === id)?.address ?? null };
}

/** A window narrows only once the round trips call for at most this share of it. */
export const NARROW_BELOW = 0.75;

/**
 * Whether the election window should change for the round trips measured to the other voters (SWIM's direct
 * probes): the new window with its cause, or null when it stays as it is. It widens as soon as round trips
 * call for more, but narrows only once they call for at most `NARROW_BELOW` of it, so jitter around one level
 * does not move it back and forth (a window a little too wide only slows a failover a little).
 */
export function electionWindowChange(
  timing: Timing,
  voterRttsMs: readonly number[],
  currentMinMs: number,
): { minMs: number; maxMs: number; cause: string } | null {
  const window = electionWindow(timing, voterRttsMs);
  if (window.minMs === currentMinMs) return null;
  if (window.minMs < currentMinMs && window.minMs > currentMinMs * NARROW_BELOW) return null;
  return { ...window, cause: `voter round trips up to ${Math.max(0, ...voterRttsMs)} ms` };
}
