import type * as v from "valibot";
import { RELAY_TO_HEADER } from "./relay/frames.ts";
import type { RouteSpec } from "./route-table.ts";
import { ANY_DESTINATION, signRequest } from "./signing.ts";

/** Why a call to another node did not produce a 2xx answer. */
export class CallError extends Error {
  constructor(
    readonly kind: "timeout" | "unreachable" | "http",
    message: string,
    readonly status?: number,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = "CallError";
  }
}

type In<S> = S extends v.GenericSchema<infer I, unknown> ? I : undefined;

export interface CallOptions<Spec extends RouteSpec> {
  body?: In<Spec["body"]>;
  /** Values for the path's ":name" parameters. */
  params?: Record<string, string>;
  query?: Record<string, string | number | undefined>;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Peer routes: the destination node's id, which the signature covers (ANY_DESTINATION where it is unknown). */
  to?: string;
  /** Sent as they are: a Range, or the relay header of an operator's call to a node behind NAT. */
  headers?: Record<string, string>;
}

/** `to` is the destination's id where the caller knew it; `reason` the peer's own words. */
type RefusalListener = (to: string | undefined, address: string, reason: string) => void;
let refusalListener: RefusalListener = () => {};

/** Called whenever a peer answers one of our signed requests with 401 (a wrong secret, a wrong destination). */
export function onPeerRefusal(listener: RefusalListener): void {
  refusalListener = listener;
}

/** Where a peer request for a node goes instead of its own address: its relays' addresses, for a node behind NAT. */
type PeerRoute = (to: string) => string[];
let peerRoute: PeerRoute = () => [];

/** Set once by the node: how it reaches peers it cannot reach directly (src/net/relay/). */
export function routePeersVia(route: PeerRoute): void {
  peerRoute = route;
}

export type Credentials = { kind: "operator"; token: string } | { kind: "peer"; secret: string; nodeId: string };

/**
 * Calls one route of the shared table on another node: the only way this codebase makes HTTP
 * requests to a node, so it cannot name a path the server lacks. Every call has a deadline.
 */
export async function call<Spec extends RouteSpec>(
  baseUrl: string,
  spec: Spec,
  credentials: Credentials,
  opts: CallOptions<Spec>,
): Promise<unknown> {
  const { response, where } = await send(baseUrl, spec, credentials, opts);
  const text = await response.text();
  const parsed = parseJson(text);
  if (!response.ok) throw httpError(where, response.status, parsed, text);
  return parsed ?? text;
}

/**
 * Like `call`, for routes that answer with bytes (file transfer): a non-2xx answer throws, a 2xx
 * one is returned unread so the caller can stream it. The deadline covers the whole body.
 */
export async function callStream<Spec extends RouteSpec>(
  baseUrl: string,
  spec: Spec,
  credentials: Credentials,
  opts: CallOptions<Spec>,
): Promise<Response> {
  const { response, where } = await send(baseUrl, spec, credentials, opts);
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    throw httpError(where, response.status, parseJson(text), text);
  }
  return response;
}

async function send<Spec extends RouteSpec>(
  baseUrl: string,
  spec: Spec,
  credentials: Credentials,
  opts: CallOptions<Spec>,
): Promise<{ response: Response; where: string }> {
  // A peer behind NAT is reached through a relay: the same signed request, sent to a relay's address with the node
  // it is for named in a header; the signature still names that node, which checks it. A relay that cannot be
  // reached, or has lost its connection to the node, is passed over for the next.
  const relays = spec.auth === "peer" && opts.to && opts.to !== ANY_DESTINATION ? peerRoute(opts.to) : [];
  const targets = relays.length > 0 ? relays : [baseUrl];
  const path = spec.path.replace(/:([A-Za-z0-9]+)/g, (_, name: string) => {
    const value = opts.params?.[name];
    if (value === undefined) throw new Error(`${spec.path}: missing path parameter "${name}"`);
    return encodeURIComponent(value);
  });
  const query = new URLSearchParams();
  for (const [k, val] of Object.entries(opts.query ?? {})) if (val !== undefined) query.set(k, String(val));
  const pathWithQuery = query.size > 0 ? `${path}?${query}` : path;
  const body = opts.body === undefined ? "" : JSON.stringify(opts.body);
  const headers: Record<string, string> = { ...opts.headers, ...(body ? { "content-type": "application/json" } : {}) };
  if (relays.length > 0 && opts.to) headers[RELAY_TO_HEADER] = opts.to;
  if (spec.auth === "operator" && credentials.kind === "operator") {
    headers.authorization = `Bearer ${credentials.token}`;
  } else if (spec.auth === "peer" && credentials.kind === "peer") {
    Object.assign(
      headers,
      signRequest({
        secret: credentials.secret,
        nodeId: credentials.nodeId,
        method: spec.method,
        pathWithQuery,
        body,
        now: Date.now(),
        to: opts.to ?? ANY_DESTINATION,
      }),
    );
  }
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  for (let i = 0; ; i++) {
    const target = targets[i] as string;
    const url = new URL(pathWithQuery, target.includes("://") ? target : `http://${target}`);
    const where = `${spec.method} ${url.host}${path}`;
    const last = i === targets.length - 1;
    try {
      const response = await fetch(url, {
        method: spec.method,
        headers,
        body: body || undefined,
        signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
      });
      if (!last && (response.status === 502 || response.status === 503)) continue;
      if (response.status === 401 && spec.auth === "peer") {
        const message = (await response
          .clone()
          .json()
          .catch(() => null)) as { message?: string } | null;
        const reason = String(message?.message ?? "401").replace(/^peer signature rejected: /, "");
        refusalListener(opts.to, url.host, reason.slice(0, 200));
      }
      return { response, where };
    } catch (e) {
      const err = e as Error;
      if (err.name === "TimeoutError" || err.name === "AbortError") {
        throw new CallError("timeout", `${where}: no answer within ${opts.timeoutMs} ms`);
      }
      if (!last) continue;
      throw new CallError("unreachable", `${where}: ${err.message}`);
    }
  }
}

function httpError(where: string, status: number, parsed: unknown, text: string): CallError {
  const detail = (parsed as { message?: string } | undefined)?.message ?? text.slice(0, 200);
  return new CallError("http", `${where}: ${status} ${detail}`, status, parsed);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
