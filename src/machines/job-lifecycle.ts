import { assign, setup } from "xstate";

/**
 * One work item's life. Applied inside the replicated state machine, so it is a pure function of
 * (state, event): every time it needs arrives in the event, stamped by the leader that proposed it.
 * Fencing lives in the guards: a report that names any lease but the current one changes nothing.
 */
export type JobState =
  | "pending"
  | "claimed"
  | "running"
  | "completed"
  | "failed"
  | "lease-expired"
  | "retry-wait"
  | "dead-lettered"
  | "cancelled";

export interface JobContext {
  attempts: number;
  maxAttempts: number;
  leaseId: string | null;
  leaseNode: string | null;
  leaseExpiresAt: number | null;
  /** retry-wait: not before this time. */
  notBefore: number | null;
  result: unknown;
  error: string | null;
  /** The lease whose report ended the last attempt: the same report again is the same outcome. */
  finishedLeaseId: string | null;
  /** The worker's id for the claim that took the current lease: a retried claim gets the same answer. */
  claimId: string | null;
}

export type JobEvent =
  | { type: "claim"; node: string; leaseId: string; expiresAt: number; claimId: string | null }
  | { type: "start"; leaseId: string; expiresAt: number }
  | { type: "heartbeat"; leaseId: string; expiresAt: number }
  | { type: "complete"; leaseId: string; result: unknown }
  | { type: "fail"; leaseId: string; error: string; retryAt: number }
  | { type: "lease-expired"; now: number }
  | { type: "retry-due"; now: number }
  | { type: "cancel"; reason: string };

const holdsLease = ({ context, event }: { context: JobContext; event: JobEvent }) =>
  "leaseId" in event && event.leaseId === context.leaseId;

const leaseLapsed = ({ context, event }: { context: JobContext; event: JobEvent }) =>
  event.type === "lease-expired" && context.leaseExpiresAt !== null && event.now >= context.leaseExpiresAt;

const releaseLease = { leaseId: null, leaseNode: null, leaseExpiresAt: null };

/** What the holder of the current lease may report, whether the job was only claimed or is running. */
const leaseHolder = {
  heartbeat: { guard: "holdsLease", actions: "renew" },
  complete: { guard: "holdsLease", target: "completed", actions: "finish" },
  fail: { guard: "holdsLease", target: "failed", actions: "failAttempt" },
  "lease-expired": { guard: "leaseLapsed", target: "lease-expired" },
  cancel: { target: "cancelled", actions: "release" },
} as const;

export const jobLifecycleMachine = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
    input: {} as Partial<JobContext> | undefined,
  },
  guards: {
    holdsLease,
    leaseLapsed,
    attemptsLeft: ({ context }) => context.attempts < context.maxAttempts,
    retryDue: ({ context, event }) => event.type === "retry-due" && event.now >= (context.notBefore ?? 0),
  },
  actions: {
    renew: assign(({ event }) => ("expiresAt" in event ? { leaseExpiresAt: event.expiresAt } : {})),
    finish: assign(({ event }) =>
      event.type === "complete" ? { result: event.result, finishedLeaseId: event.leaseId, ...releaseLease } : {},
    ),
    failAttempt: assign(({ event }) =>
      event.type === "fail"
        ? { error: event.error, notBefore: event.retryAt, finishedLeaseId: event.leaseId, ...releaseLease }
        : {},
    ),
    release: assign(releaseLease),
  },
}).createMachine({
  id: "job",
  context: ({ input }) => ({
    attempts: 0,
    maxAttempts: 3,
    leaseId: null,
    leaseNode: null,
    leaseExpiresAt: null,
    notBefore: null,
    result: null,
    error: null,
    finishedLeaseId: null,
    claimId: null,
    ...(input ?? {}),
  }),
  initial: "pending",
  states: {
    pending: {
      on: {
        claim: {
          target: "claimed",
          actions: assign(({ context, event }) => ({
            attempts: context.attempts + 1,
            leaseId: event.leaseId,
            leaseNode: event.node,
            leaseExpiresAt: event.expiresAt,
            notBefore: null,
            claimId: event.claimId,
          })),
        },
        cancel: "cancelled",
      },
    },
    claimed: {
      on: {
        start: { guard: "holdsLease", target: "running", actions: "renew" },
        ...leaseHolder,
      },
    },
    running: { on: leaseHolder },
    /** Passing through: the lease ran out; the attempt is spent, and the item goes back to the queue if any remain. */
    "lease-expired": {
      entry: assign({ error: "lease expired: the worker stopped reporting", ...releaseLease }),
      always: [{ guard: "attemptsLeft", target: "pending" }, { target: "dead-lettered" }],
    },
    /** Passing through: a reported failure waits out its backoff, or ends the item once attempts are spent. */
    failed: {
      always: [{ guard: "attemptsLeft", target: "retry-wait" }, { target: "dead-lettered" }],
    },
    "retry-wait": {
      on: {
        "retry-due": { guard: "retryDue", target: "pending" },
        cancel: "cancelled",
      },
    },
    completed: { type: "final" },
    "dead-lettered": { type: "final" },
    cancelled: { type: "final" },
  },
});
