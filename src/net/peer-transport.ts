import { type CallOptions, call, callStream } from "./client.ts";
import type { RouteSpec } from "./route-table.ts";

export { CallError } from "./client.ts";

/** A peer as the sender knows it: its id (which the signature names) where known, and where it listens. */
export interface PeerAddress {
  /** Unknown for a seed a joining node has only an address for. */
  id?: string;
  address: string;
}

export type PeerRequest<Spec extends RouteSpec> = Omit<CallOptions<Spec>, "to">;

/**
 * How membership, Raft, work and data sync reach other nodes: one route of the shared table, signed for the
 * peer, with a deadline; a peer behind NAT is reached through its relays. Domains hold one of these, not the
 * HTTP client or the cluster secret, so a test or a simulator can hand them another.
 */
export interface PeerTransport {
  /** The answer's JSON body; a non-2xx answer, a timeout or an unreachable peer throws a CallError. */
  request<Spec extends RouteSpec>(to: PeerAddress, spec: Spec, opts: PeerRequest<Spec>): Promise<unknown>;
  /** The answer unread, for routes that answer with bytes (files); the deadline covers the whole body. */
  stream<Spec extends RouteSpec>(
    to: PeerAddress,
    spec: Spec,
    opts: PeerRequest<Spec> & { headers?: Record<string, string> },
  ): Promise<Response>;
}

/** Today's transport: HTTP, each request signed with the cluster secret as node `nodeId`. */
export function httpTransport(self: { nodeId: string; secret: string }): PeerTransport {
  const credentials = { kind: "peer" as const, secret: self.secret, nodeId: self.nodeId };
  return {
    request: (to, spec, opts) => call(to.address, spec, credentials, { ...opts, to: to.id }),
    stream: (to, spec, opts) => callStream(to.address, spec, credentials, { ...opts, to: to.id }),
  };
}
