import type { Elysia } from "elysia";
import { VERIFIED_PEER_HEADER } from "../net/gate.ts";
import { ROUTES } from "../net/route-table.ts";
import { serve } from "./define.ts";

/**
 * A node behind NAT asks to open a relay lane: the gate has checked its signature, so this answers who it is
 * and which lane; the server then upgrades the connection to a WebSocket (src/net/relay/server.ts).
 */
export function relayRoutes(app: Elysia): void {
  serve(app, ROUTES.peerRelay, ({ query, request }) => ({
    node: request.headers.get(VERIFIED_PEER_HEADER) ?? "",
    lane: query.lane,
  }));
}
