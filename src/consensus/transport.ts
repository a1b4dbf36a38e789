import type { CallError, PeerTransport } from "../net/peer-transport.ts";
import { ROUTES } from "../net/route-table.ts";
import type { RaftMessage, SnapshotChunk } from "./messages.ts";

/** What a send produced: the answer's messages, or why none came (`kind` as `CallError` names it). */
export type SendOutcome = { ok: true; messages: RaftMessage[] } | { ok: false; kind: string; error: Error };

/**
 * How Raft envelopes and snapshot pieces reach another voter: signed HTTP in a node, a seeded network in
 * the simulator. `done` is called exactly once, never throws back into the transport.
 */
export interface RaftTransport {
  send(to: string, address: string, messages: RaftMessage[], timeoutMs: number, done: (o: SendOutcome) => void): void;
  sendSnapshotChunk(
    to: string,
    address: string,
    chunk: SnapshotChunk,
    timeoutMs: number,
    done: (o: SendOutcome) => void,
  ): void;
}

/**
 * The node's transport: the peer routes of the route table over the node's `PeerTransport` (signed, through
 * relays for a NAT'd voter). A throw from `done` (a bug in handling an answer) goes to `onBug` rather than
 * becoming an unhandled rejection.
 */
export function raftOverPeers(peers: PeerTransport, onBug: (e: unknown) => void): RaftTransport {
  const settle = (answer: Promise<unknown>, done: (o: SendOutcome) => void) =>
    answer
      .then(
        (a) => done({ ok: true, messages: (a as { messages?: RaftMessage[] }).messages ?? [] }),
        (e: unknown) => done({ ok: false, kind: (e as CallError).kind ?? "error", error: e as Error }),
      )
      .catch(onBug);
  return {
    send: (to, address, messages, timeoutMs, done) =>
      settle(peers.request({ id: to, address }, ROUTES.peerRaft, { body: { messages }, timeoutMs }), done),
    sendSnapshotChunk: (to, address, chunk, timeoutMs, done) =>
      settle(peers.request({ id: to, address }, ROUTES.peerRaftSnapshot, { body: chunk, timeoutMs }), done),
  };
}
