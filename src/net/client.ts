import type * as v from "valibot";
import type { RouteSpec } from "./route-table.ts";
import { signRequest } from "./signing.ts";

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
  const base = baseUrl.includes("://") ? baseUrl : `http://${baseUrl}`;
  const path = spec.path.replace(/:([A-Za-z]+)/g, (_, name: string) => {
    const value = opts.params?.[name];
    if (value === undefined) throw new Error(`${spec.path}: missing path parameter "${name}"`);
    return encodeURIComponent(value);
  });
  const url = new URL(path, base);
  for (const [k, val] of Object.entries(opts.query ?? {})) if (val !== undefined) url.searchParams.set(k, String(val));
  const body = opts.body === undefined ? "" : JSON.stringify(opts.body);
  const headers: Record<string, string> = body ? { "content-type": "application/json" } : {};
  if (spec.auth === "operator" && credentials.kind === "operator") {
    headers.authorization = `Bearer ${credentials.token}`;
  } else if (spec.auth === "peer" && credentials.kind === "peer") {
    Object.assign(
      headers,
      signRequest({
        secret: credentials.secret,
        nodeId: credentials.nodeId,
        method: spec.method,
        pathWithQuery: url.pathname + url.search,
        body,
        now: Date.now(),
      }),
    );
  }
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  let response: Response;
  try {
    response = await fetch(url, {
      method: spec.method,
      headers,
      body: body || undefined,
      signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
    });
  } catch (e) {
    const err = e as Error;
    if (err.name === "TimeoutError" || err.name === "AbortError") {
      throw new CallError("timeout", `${spec.method} ${url.host}${path}: no answer within ${opts.timeoutMs} ms`);
    }
    throw new CallError("unreachable", `${spec.method} ${url.host}${path}: ${err.message}`);
  }
  const text = await response.text();
  const parsed = parseJson(text);
  if (!response.ok) {
    const detail = (parsed as { message?: string } | undefined)?.message ?? text.slice(0, 200);
    throw new CallError(
      "http",
      `${spec.method} ${url.host}${path}: ${response.status} ${detail}`,
      response.status,
      parsed,
    );
  }
  return parsed ?? text;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
