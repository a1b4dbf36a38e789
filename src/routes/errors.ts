import type { LeaderHint } from "../consensus/hints.ts";
import { NotLeaderError } from "../consensus/raft.ts";
import { RefusedError } from "../consensus/refused.ts";
import { OutcomeUnknownError, WriteFailedError } from "../consensus/runtime.ts";
import { errorResponse, writeFailedResponse } from "../net/errors.ts";
import { RunError } from "../runs/service.ts";
import { type RefusedField, WorkError } from "../work/service.ts";

/**
 * A route's own refusal of a well-formed request: a path or key that names nothing here (404), a signer speaking
 * for another node (403), a report on a lease that is no longer current (409), a name the cluster file lacks (422).
 */
export class RouteRefusal extends Error {
  constructor(
    readonly status: 403 | 404 | 409 | 422,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** `value`, or a 404 with `code` where there is none. */
export function found<T>(value: T | null | undefined, code: string, message: string): T {
  if (value === null || value === undefined) throw new RouteRefusal(404, code, message);
  return value;
}

/** A node that is not a voter holds no replicated state: it names the leader (421), whom clients then ask. */
export class NotAVoterError extends Error {
  constructor() {
    super("this node is not a voter and holds no replicated state: ask the leader");
  }
}

export interface ErrorContext {
  /** The leader as this node knows it, for a 421's `leader` (clients follow it). */
  leaderHint?: () => LeaderHint | null;
  /** Where a refused submitted item's field is in the request body (default `body.<field>`). */
  refusedAt?: (item: RefusedField) => string;
}

const WORK_CODES = { 404: "no_such_item", 409: "id_conflict", 422: "rejected", 429: "backpressure" } as const;
const RUN_CODES = { 404: "no_such_run", 409: "refused", 422: "rejected" } as const;

/**
 * The one place where domain errors become HTTP answers, for every route (`serve` calls it on whatever a handler
 * throws). Null for anything else: a bug, which the router logs and answers with 500.
 */
export function domainErrorResponse(e: unknown, ctx: ErrorContext = {}): Response | null {
  const leader = () => {
    const hint = ctx.leaderHint?.() ?? null;
    return { leader: hint ? { id: hint.id, address: hint.address } : null };
  };
  if (e instanceof NotLeaderError || e instanceof NotAVoterError) {
    return errorResponse(421, e instanceof NotLeaderError ? "not_leader" : "not_a_voter", e.message, leader());
  }
  if (e instanceof WriteFailedError) return writeFailedResponse(e.message);
  if (e instanceof OutcomeUnknownError) {
    // 503, not 421: a 421 means nothing was appended (safe to send again), this one may still take effect.
    const response = errorResponse(503, "outcome_unknown", `${e.message}: retry with the same id`, leader());
    response.headers.set("retry-after", "1");
    return response;
  }
  if (e instanceof RefusedError) return errorResponse(e.status, e.code, e.message);
  if (e instanceof RouteRefusal) return errorResponse(e.status, e.code, e.message, e.field ? { field: e.field } : {});
  if (e instanceof RunError) {
    return errorResponse(e.status, e.code ?? RUN_CODES[e.status], e.message, e.field ? { field: e.field } : {});
  }
  if (e instanceof WorkError) {
    const { item, retryAfterS } = e.about;
    const at = ctx.refusedAt ?? ((i: RefusedField) => `body.${i.field}`);
    const response = errorResponse(e.status, WORK_CODES[e.status], e.message, item ? { field: at(item) } : {});
    if (retryAfterS) response.headers.set("retry-after", String(retryAfterS));
    return response;
  }
  return null;
}
