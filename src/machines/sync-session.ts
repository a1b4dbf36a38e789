import * as v from "valibot";
import { assign, emit, setup } from "xstate";

/**
 * One file's transfer to this node. The runtime reports what happened (the pieces are in, the whole
 * file verified, the rename landed, an attempt failed); the machine decides what comes next and emits
 * it (`fetch`, `verify`, `commit`, `wait`). No I/O and no clock: a failure brings its own time and
 * random draw, so the backoff it picks is a pure function of the events.
 */
export const syncStateSchema = v.picklist([
  "planned",
  "fetching",
  "verifying",
  "committing",
  "done",
  "failed",
  "retry-wait",
  "given-up",
  "cancelled",
]);
export type SyncState = v.InferOutput<typeof syncStateSchema>;

export interface SyncRetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface SyncContext extends SyncRetryPolicy {
  /** Fetch attempts begun, the current one included. */
  attempts: number;
  /** Pieces already verified on disk when the session started. */
  resumedPieces: number;
  error: string | null;
  /** retry-wait: the next attempt not before this time. */
  retryAt: number | null;
}

/** Every event says why, so the trace answers "why did this transfer stop or start again". */
export type SyncEvent =
  | { type: "start"; resumedPieces: number; cause: string }
  | { type: "fetched"; cause: string }
  | { type: "verified"; cause: string }
  | { type: "committed"; cause: string }
  /** `random` is uniform in [0, 1): the jitter of the backoff that follows. */
  | { type: "fail"; error: string; now: number; random: number; cause: string }
  | { type: "retry-due"; now: number; cause: string }
  | { type: "cancel"; cause: string };

export type SyncEffect =
  | { type: "fetch"; attempt: number }
  | { type: "verify" }
  | { type: "commit" }
  | { type: "wait"; until: number };

export const DEFAULT_SYNC_RETRY: SyncRetryPolicy = { maxAttempts: 5, baseDelayMs: 2_000, maxDelayMs: 120_000 };

/**
 * Exponential backoff with equal jitter: the cap doubles per failed attempt up to `maxDelayMs`, and the
 * delay is uniform in [cap/2, cap], so retries spread out yet never come back at once.
 */
export function syncRetryDelayMs(
  attempt: number,
  random: number,
  baseDelayMs = DEFAULT_SYNC_RETRY.baseDelayMs,
  maxDelayMs = DEFAULT_SYNC_RETRY.maxDelayMs,
): number {
  const cap = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const jitter = Math.min(1, Math.max(0, random));
  return Math.round(cap * (0.5 + jitter / 2));
}

export const syncSessionMachine = setup({
  types: {
    context: {} as SyncContext,
    events: {} as SyncEvent,
    emitted: {} as SyncEffect,
    input: {} as Partial<SyncRetryPolicy> | undefined,
  },
  guards: {
    attemptsLeft: ({ context }) => context.attempts < context.maxAttempts,
    retryDue: ({ context, event }) => event.type === "retry-due" && event.now >= (context.retryAt ?? 0),
  },
  actions: {
    failAttempt: assign(({ context, event }) =>
      event.type === "fail"
        ? {
            error: event.error,
            retryAt:
              event.now + syncRetryDelayMs(context.attempts, event.random, context.baseDelayMs, context.maxDelayMs),
          }
        : {},
    ),
  },
}).createMachine({
  id: "sync",
  context: ({ input }) => ({
    ...DEFAULT_SYNC_RETRY,
    ...(input ?? {}),
    attempts: 0,
    resumedPieces: 0,
    error: null,
    retryAt: null,
  }),
  initial: "planned",
  states: {
    planned: {
      on: {
        start: {
          target: "fetching",
          actions: assign({ resumedPieces: ({ event }) => event.resumedPieces }),
        },
        cancel: "cancelled",
      },
    },
    fetching: {
      entry: [
        assign({ attempts: ({ context }) => context.attempts + 1, retryAt: null }),
        emit(({ context }) => ({ type: "fetch" as const, attempt: context.attempts })),
      ],
      on: {
        fetched: "verifying",
        fail: { target: "failed", actions: "failAttempt" },
        cancel: "cancelled",
      },
    },
    verifying: {
      entry: emit({ type: "verify" }),
      on: {
        verified: "committing",
        fail: { target: "failed", actions: "failAttempt" },
        cancel: "cancelled",
      },
    },
    /** Not cancellable: the rename is one atomic step that may already have landed. */
    committing: {
      entry: emit({ type: "commit" }),
      on: {
        committed: "done",
        fail: { target: "failed", actions: "failAttempt" },
      },
    },
    /** Passing through: wait out the backoff, or stop once the attempts are spent. */
    failed: {
      always: [{ guard: "attemptsLeft", target: "retry-wait" }, { target: "given-up" }],
    },
    "retry-wait": {
      entry: emit(({ context }) => ({ type: "wait" as const, until: context.retryAt ?? 0 })),
      on: {
        "retry-due": { guard: "retryDue", target: "fetching" },
        cancel: "cancelled",
      },
    },
    done: { type: "final" },
    "given-up": { type: "final", entry: assign({ retryAt: null }) },
    cancelled: { type: "final", entry: assign({ retryAt: null }) },
  },
});
