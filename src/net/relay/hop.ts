import { errorResponse } from "../errors.ts";
import { VERIFIED_PEER_HEADER } from "../gate.ts";
import { HOP_BY_HOP_HEADERS, RELAY_HOP_HEADER } from "./frames.ts";

/** A relay of the node behind NAT, as gossiped. */
export interface RelayAddress {
  id: string;
  address: string;
}

/** Headers that describe one hop, not the request or its answer (the next relay checks the sender itself). */
const HOP_HEADERS = new Set([...HOP_BY_HOP_HEADERS, VERIFIED_PEER_HEADER]);

/**
 * A request for a node behind NAT that reached a member which holds no lane to it (an operator, or a peer whose
 * gossip is stale, knocked at the wrong door): passed on to the node's relays in turn, marked so that the relay
 * passes it no further. The relay checks it again, and the node behind NAT checks it as it checks any.
 */
export async function passToRelay(
  request: Request,
  relays: readonly RelayAddress[],
  opts: { self: string; timeoutMs: number },
): Promise<Response> {
  const url = new URL(request.url);
  const headers = [...request.headers].filter(([k]) => !HOP_HEADERS.has(k.toLowerCase()));
  headers.push([RELAY_HOP_HEADER, opts.self]);
  const body = request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer();
  const failures: string[] = [];
  for (const relay of relays) {
    try {
      const answer = await fetch(`http://${relay.address}${url.pathname}${url.search}`, {
        method: request.method,
        headers,
        body,
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
      // That relay lost its lane to the node (or never had one): the next may still hold one.
      if (answer.status === 502) {
        failures.push(`${relay.id}: ${answer.status}`);
        await answer.body?.cancel();
        continue;
      }
      const answerHeaders = [...answer.headers].filter(([k]) => !HOP_HEADERS.has(k.toLowerCase()));
      return new Response(answer.body, { status: answer.status, headers: answerHeaders });
    } catch (e) {
      failures.push(`${relay.id}: ${(e as Error).message}`);
    }
  }
  return errorResponse(502, "relay_lost", `no relay of the node passed the request on (${failures.join("; ")})`);
}
