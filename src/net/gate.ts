import { timingSafeEqual } from "node:crypto";
import { errorResponse } from "./errors.ts";
import type { ReplayGuard } from "./replay-guard.ts";
import { authFor } from "./route-table.ts";
import { checkSignatureHeaders, verifyRequest } from "./signing.ts";

/** Peer id of a request whose signature checked out; set by the gate, read by peer routes. */
export const VERIFIED_PEER_HEADER = "x-p2p-verified-peer";

export interface GateOptions {
  token: string;
  secret: string;
  replay: ReplayGuard;
  maxSkewMs: number;
  maxBodyBytes: number;
  now: () => number;
}

/**
 * Authentication in front of every route: the operator token for the API, an HMAC signature for
 * node-to-node traffic, nothing for /health. It reads the raw body once (the signature covers it)
 * and hands the router a fresh request, so no route can forget to check.
 */
export function gate(opts: GateOptions, next: (request: Request) => Promise<Response>) {
  const token = Buffer.from(opts.token);
  const tooLarge = () => errorResponse(413, "payload_too_large", `body over the ${opts.maxBodyBytes}-byte limit`);
  return async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (Number(request.headers.get("content-length") ?? 0) > opts.maxBodyBytes) return tooLarge();
    switch (authFor(url.pathname)) {
      case "none":
        return next(request);
      case "operator": {
        const given = Buffer.from(request.headers.get("authorization")?.replace(/^Bearer\s+/i, "") ?? "");
        if (given.length === 0)
          return errorResponse(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)");
        if (given.length !== token.length || !timingSafeEqual(given, token)) {
          return errorResponse(401, "unauthorized", "wrong bearer token");
        }
        return next(request);
      }
      case "peer": {
        const envelope = checkSignatureHeaders(request.headers, opts.now(), opts.maxSkewMs);
        if (!envelope.ok) return errorResponse(401, "unauthorized", `peer signature rejected: ${envelope.reason}`);
        const body = new Uint8Array(await request.arrayBuffer());
        if (body.length > opts.maxBodyBytes) return tooLarge();
        const verdict = verifyRequest({
          secret: opts.secret,
          method: request.method,
          pathWithQuery: url.pathname + url.search,
          body,
          headers: request.headers,
          now: opts.now(),
          maxSkewMs: opts.maxSkewMs,
          replay: opts.replay,
        });
        if (!verdict.ok) return errorResponse(401, "unauthorized", `peer signature rejected: ${verdict.reason}`);
        const headers = new Headers(request.headers);
        headers.set(VERIFIED_PEER_HEADER, verdict.nodeId);
        return next(
          new Request(request.url, { method: request.method, headers, body: body.length ? body : undefined }),
        );
      }
    }
  };
}
