import { timingSafeEqual } from "node:crypto";
import type { AuthFailures } from "./auth-failures.ts";
import { errorResponse } from "./errors.ts";
import type { LoginThrottle } from "./login-throttle.ts";
import type { ReplayGuard } from "./replay-guard.ts";
import { acceptsAnyDestination, authFor } from "./route-table.ts";
import { checkDestination, checkSignatureHeaders, REPLAY_REASONS, verifyRequest } from "./signing.ts";

/** The dashboard's login form (src/ui/routes.ts `UI_OPEN.login`). */
const LOGIN_PATH = "/ui/login";

/** Peer id of a request whose signature checked out; set by the gate, read by peer routes. */
export const VERIFIED_PEER_HEADER = "x-p2p-verified-peer";

export interface GateOptions {
  token: string;
  secret: string;
  /** This node's id: a peer request must be signed for it. */
  self: string;
  /** Whether a node id belongs to the cluster (configured or a member): others may only join through a seed. */
  knownSender: (nodeId: string) => boolean;
  replay: ReplayGuard;
  failures: AuthFailures;
  /** Failed operator logins by remote address: the token cannot be guessed at the rate the node answers. */
  logins: LoginThrottle;
  maxSkewMs: number;
  now: () => number;
}

/** Where a request came from, as the server saw it (for warnings that name the sender). */
export type Handler = (request: Request, remote?: string) => Promise<Response>;

/**
 * Authentication in front of every route: the operator token for the API, an HMAC signature for
 * node-to-node traffic, nothing for /health. For a peer request, everything the headers alone can
 * prove wrong (format, clock skew, destination, an unknown sender, a nonce already seen) is refused
 * before the body is read; then the body is read once, the signature over it checked, and the router
 * handed a fresh request, so no route can forget to check.
 */
export function gate(opts: GateOptions, next: (request: Request) => Promise<Response>): Handler {
  const token = Buffer.from(opts.token);
  return async (request: Request, remote?: string): Promise<Response> => {
    const url = new URL(request.url);
    const address = remote ?? "unknown";
    switch (authFor(url.pathname)) {
      case "none":
        return next(request);
      // The dashboard checks its own login cookie, and a CSRF token on every POST (src/ui/routes.ts); its login
      // form answers a wrong token with 401, which counts as a failed login here.
      case "session": {
        const isLogin = request.method === "POST" && url.pathname === LOGIN_PATH;
        const refused = isLogin ? throttled(opts, address) : null;
        if (refused) return refused;
        const response = await next(request);
        if (isLogin && response.status === 401) opts.logins.fail(address, opts.now());
        return response;
      }
      case "operator": {
        const given = Buffer.from(request.headers.get("authorization")?.replace(/^Bearer\s+/i, "") ?? "");
        if (given.length === 0)
          return errorResponse(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)");
        // Before the token is looked at: a throttled address learns nothing, not even that a guess was right.
        const refused = throttled(opts, address);
        if (refused) return refused;
        if (given.length !== token.length || !timingSafeEqual(given, token)) {
          opts.logins.fail(address, opts.now());
          return errorResponse(401, "unauthorized", "wrong bearer token");
        }
        return next(request);
      }
      case "peer": {
        const now = opts.now();
        const envelope = checkSignatureHeaders(request.headers, now, opts.maxSkewMs);
        if (!envelope.ok) return refuse(envelope.reason);
        const { node, nonce, to } = envelope.fields;
        const refuseFrom = (reason: string) => {
          opts.failures.record("inbound", node.slice(0, 64), remote ?? null, reason);
          return refuse(reason);
        };
        const anyDestination = acceptsAnyDestination(url.pathname);
        const destination = checkDestination(to, opts.self, anyDestination);
        if (!destination.ok) return refuseFrom(destination.reason);
        if (!anyDestination && !opts.knownSender(node)) return refuseFrom(`unknown sender ${node.slice(0, 64)}`);
        const seen = opts.replay.peek(node, nonce, now);
        if (seen !== "fresh") return refuse(REPLAY_REASONS[seen]);
        const body = new Uint8Array(await request.arrayBuffer());
        const verdict = verifyRequest({
          secret: opts.secret,
          self: opts.self,
          anyDestination,
          method: request.method,
          pathWithQuery: url.pathname + url.search,
          body,
          headers: request.headers,
          now: opts.now(),
          maxSkewMs: opts.maxSkewMs,
          replay: opts.replay,
        });
        if (!verdict.ok) return refuseFrom(verdict.reason);
        const headers = new Headers(request.headers);
        headers.set(VERIFIED_PEER_HEADER, verdict.nodeId);
        return next(
          new Request(request.url, { method: request.method, headers, body: body.length ? body : undefined }),
        );
      }
    }
  };
}

/** A 429 for an address past its failed logins, or null when it may try now. */
function throttled(opts: GateOptions, address: string): Response | null {
  const waitS = Math.ceil(opts.logins.waitMs(address, opts.now()) / 1000);
  if (waitS === 0) return null;
  const response = errorResponse(
    429,
    "too_many_failures",
    `too many failed logins from ${address}: try again in ${waitS} s`,
  );
  response.headers.set("retry-after", String(waitS));
  return response;
}

function refuse(reason: string): Response {
  return errorResponse(401, "unauthorized", `peer signature rejected: ${reason}`);
}
