import * as v from "valibot";
import { CallError, call } from "../net/client.ts";
import { RELAY_TO_HEADER } from "../net/relay/frames.ts";
import { type PathParams, ROUTES, type RouteSpec } from "../net/route-table.ts";

/**
 * The typed client for the node's API, derived from the route table: a route is named by its key, so one that does
 * not exist cannot be called; its path parameters, query and body are typed by the table's schemas; its answer is
 * checked against the route's response schema (a mismatch is a ContractError naming the route) and typed by it.
 * A 421 (refused before anything was appended: no leader here) is followed to the leader it names, or sent again
 * with backoff while an election runs, for any call; a call marked safe to repeat (the body names its ids) is also
 * sent again after an answer that never came or a 503 (its outcome unknown). The CLI, the tests and users' scripts call nodes through this.
 */

type Routes = typeof ROUTES;
/** Routes an operator (or anyone, for the open ones) may call; peer routes need the cluster's signature. */
export type ApiRoute = { [N in keyof Routes]: Routes[N]["auth"] extends "peer" ? never : N }[keyof Routes];

type SchemaOf<N extends keyof Routes, K extends "body" | "query" | "response"> = Routes[N] extends {
  [P in K]: infer S extends v.GenericSchema;
}
  ? S
  : undefined;

/** The parsed 2xx answer of a route (the text, for a route that answers with another content type). */
export type ResponseOf<N extends ApiRoute> =
  SchemaOf<N, "response"> extends v.GenericSchema ? v.InferOutput<SchemaOf<N, "response">> : string;
/** A route's request body as sent (fields with defaults may be left out). */
export type BodyOf<N extends ApiRoute> =
  SchemaOf<N, "body"> extends v.GenericSchema ? v.InferInput<SchemaOf<N, "body">> : never;
/** A route's query: its keys only, each a string or a number. */
export type QueryOf<N extends ApiRoute> =
  SchemaOf<N, "query"> extends v.GenericSchema
    ? { [K in keyof v.InferInput<SchemaOf<N, "query">>]?: string | number }
    : never;

type ParamsPart<N extends ApiRoute> = [keyof PathParams<Routes[N]["path"]>] extends [never]
  ? { params?: never }
  : { params: PathParams<Routes[N]["path"]> };
type BodyPart<N extends ApiRoute> = [BodyOf<N>] extends [never]
  ? { body?: never }
  : object extends BodyOf<N>
    ? { body?: BodyOf<N> }
    : { body: BodyOf<N> };
type QueryPart<N extends ApiRoute> = [QueryOf<N>] extends [never] ? { query?: never } : { query?: QueryOf<N> };

export type CallInput<N extends ApiRoute> = ParamsPart<N> &
  BodyPart<N> &
  QueryPart<N> & {
    timeoutMs?: number;
    /**
     * Send again, unchanged, after an answer that never came (timeout, dropped connection) or a 503 (the outcome is
     * unknown), with backoff, for at most this long. Only for requests that are safe to repeat: the body names its
     * items' ids, so the node applies them once.
     */
    retryForMs?: number;
  };

/** The call's input may be left out where the route needs none. */
export type InputArg<N extends ApiRoute> = object extends CallInput<N> ? [input?: CallInput<N>] : [input: CallInput<N>];

/** A node answered 2xx with a body that does not match the route's response schema. */
export class ContractError extends Error {
  constructor(
    readonly route: string,
    message: string,
  ) {
    super(message);
    this.name = "ContractError";
  }
}

export interface ClientOptions {
  /** The node to ask, e.g. "http://127.0.0.1:7400". */
  url: string;
  /** The operator token. */
  token: string;
  /** A node behind NAT whose own API is called: `url` is a public member that passes the calls on to it. */
  relayTo?: string;
  timeoutMs?: number;
  /** How long any call waits for a leader while nodes answer 421 (an election under way); default 10 s. */
  leaderWaitMs?: number;
  /** Called before each resend after a backoff. */
  onRetry?: (error: Error) => void;
}

const BACKOFF_BASE_MS = 200;
const BACKOFF_MAX_MS = 5_000;
/** A follower's pointer to the leader is followed at once a few times in a row (hints go stale in an election). */
const MAX_REDIRECTS = 3;
const LEADER_WAIT_MS = 10_000;

export class Client {
  constructor(private readonly opts: ClientOptions) {}

  get url(): string {
    return this.opts.url;
  }

  async call<N extends ApiRoute>(name: N, ...[input]: InputArg<N>): Promise<ResponseOf<N>> {
    const spec: RouteSpec | undefined = (ROUTES as Record<string, RouteSpec>)[name];
    if (!spec || spec.auth === "peer") throw new Error(`no route "${name}" that an operator may call`);
    const args = (input ?? {}) as CallInput<N>;
    const retryForMs = args.retryForMs ?? 0;
    const start = Date.now();
    const deadline = start + retryForMs;
    const leaderDeadline = start + Math.max(retryForMs, this.opts.leaderWaitMs ?? LEADER_WAIT_MS);
    let url = this.opts.url;
    let redirects = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const answer = await call(
          url,
          spec,
          { kind: "operator", token: this.opts.token },
          {
            params: args.params as Record<string, string> | undefined,
            query: args.query as Record<string, string | number | undefined> | undefined,
            body: args.body as never,
            timeoutMs: args.timeoutMs ?? this.opts.timeoutMs ?? 5_000,
            // Only to the member named: a leader that a 421 points to is asked directly.
            headers: this.opts.relayTo && url === this.opts.url ? { [RELAY_TO_HEADER]: this.opts.relayTo } : undefined,
          },
        );
        return checked(name, spec, answer) as ResponseOf<N>;
      } catch (e) {
        // Nothing was appended: sending it again is safe for any call.
        const refused = e instanceof CallError && e.status === 421;
        const leader = leaderAddress(e);
        if (leader) url = `http://${leader}`;
        if (leader && ++redirects <= MAX_REDIRECTS) continue;
        if (!leader) redirects = 0;
        const delayMs = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
        const retryable = refused || (retryForMs > 0 && outcomeUnknown(e));
        if (!retryable || Date.now() + delayMs > (refused ? leaderDeadline : deadline)) throw e;
        this.opts.onRetry?.(e as Error);
        await Bun.sleep(delayMs);
      }
    }
  }
}

/** The answer as the node sent it (fields a newer node added kept), once it matches the route's schema. */
function checked(name: string, spec: RouteSpec, answer: unknown): unknown {
  if (!spec.response) return answer;
  const result = v.safeParse(spec.response, answer);
  if (result.success) return answer;
  const issue = result.issues[0];
  const at = issue?.path?.map((p) => String(p.key)).join(".") || "(the body)";
  throw new ContractError(
    name,
    `${spec.method} ${spec.path} (${name}): the answer does not match its schema at ${at}: ${issue?.message ?? "invalid"}`,
  );
}

function leaderAddress(e: unknown): string | null {
  if (!(e instanceof CallError) || e.status !== 421) return null;
  return (e.body as { leader?: { address?: string | null } | null } | undefined)?.leader?.address ?? null;
}

/** Failures after which a request may or may not have been applied. */
function outcomeUnknown(e: unknown): boolean {
  if (!(e instanceof CallError)) return false;
  return e.kind === "timeout" || e.kind === "unreachable" || e.status === 503;
}
