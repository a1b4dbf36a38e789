import type { Member } from "../membership/swim.ts";
import type { PeerStatus } from "../shared/status.ts";

export type { AuthFailure, NodeRole, NodeStatus, PeerStatus } from "../shared/status.ts";

export function peerStatus(m: Member, now: number, reach: string): PeerStatus {
  return {
    id: m.id,
    address: m.address,
    state: m.state,
    incarnation: m.incarnation,
    lastSeenMs: Math.max(0, now - m.lastSeenAt),
    stateSinceMs: Math.max(0, now - m.stateSince),
    rttMs: m.rttMs,
    reach,
    resources: m.info,
  };
}
