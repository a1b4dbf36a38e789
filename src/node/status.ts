import type { Role } from "../machines/raft-role.ts";
import type { Member } from "../membership/swim.ts";
import type { AuthFailure } from "../net/auth-failures.ts";
import type { NodeInfo } from "./info.ts";

/** A voter's Raft role, or "non-voter" for a node that only works. */
export type NodeRole = Role | "non-voter";

export interface PeerStatus {
  id: string;
  address: string;
  state: Member["state"];
  incarnation: number;
  lastSeenMs: number;
  stateSinceMs: number;
  rttMs: number | null;
  resources: NodeInfo | null;
}

export interface NodeStatus {
  node: {
    id: string;
    cluster: string;
    role: NodeRole;
    version: string;
    address: string;
    incarnation: number;
    uptimeMs: number;
    resources: NodeInfo | null;
  };
  leader: { id: string; term: number } | null;
  peers: PeerStatus[];
  /** Peers whose signed requests fail, recently: theirs to us (inbound) and ours to them (outbound). */
  signatureFailures: { inbound: AuthFailure[]; outbound: AuthFailure[] };
}

export function peerStatus(m: Member, now: number): PeerStatus {
  return {
    id: m.id,
    address: m.address,
    state: m.state,
    incarnation: m.incarnation,
    lastSeenMs: Math.max(0, now - m.lastSeenAt),
    stateSinceMs: Math.max(0, now - m.stateSince),
    rttMs: m.rttMs,
    resources: m.info,
  };
}
