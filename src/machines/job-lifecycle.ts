import * as v from "valibot";
import { assign, setup } from "xstate";
import { wireNumberSchema } from "../net/bounds.ts";

/**
 * One work item's life. Applied inside the replicated state machine, so it is a pure function of
 * (state, event): every time it needs arrives in the event, stamped by the leader that proposed it.
 * Fencing lives in the guards: a report that names any lease but the current one changes nothing.
 */
export const jobStateSchema = v.picklist([
  "pending",
  "claimed",
  "running",
  "completed",
  "failed",
  "lease-expired",
  "retry-wait",
  "dead-lettered",
  "cancelled",
]);
export type JobState = v.InferOutput<typeof jobStateSchema>;

/** What the machine keeps of an item's attempts and current lease (GET /work/:id shows it as `context`). */
export const jobContextSchema = v.object({
  attempts: wireNumberSchema,
  maxAttempts: wireNumberSchema,
  leaseId: v.nullable(v.string()),
  leaseNode: v.nullable(v.string()),
  leaseExpiresAt: v.nullable(wireNumberSchema),
  /** retry-wait: not before this time. */
  notBefore: v.nullable(wireNumberSchema),
  result: v.unknown(),
  error: v.nullable(v.string()),
  /** The lease whose report ended the last attempt: the same report again is the same outcome. */
  finishedLeaseId: v.nullable(v.string()),
  /** The worker's id for the claim that took the current lease: a retried claim gets the same answer. */
  claimId: v.nullable(v.string()),
  /** When the current lease was taken: the leader's backstop fails an attempt held past its timeout. */
  claimedAt: v.optional(v.nullable(wireNumberSchema)),
  /** Files the completed job left in its output folder, as paths on the node that ran it. */
  artifacts: v.optional(v.array(v.string())),
});
export type JobContext = v.InferOutput<typeof jobContextSchema>;

export type JobEvent =
  | { type: "claim"; node: string; leaseId: string; expiresAt: number; claimId: string | null; at: number }
  | { type: "start"; leaseId: string; expiresAt: number }
  | { type: "heartbeat"; leaseId: string; expiresAt: number }
  | { type: "complete"; leaseId: string; result: unknown; artifacts?: string[] }
  | { type: "fail"; leaseId: string; error: string; retryAt: number }
  | { type: "lease-expired"; now: number }
  | { type: "retry-due"; now: number }
  | { type: "cancel"; reason: string };

const holdsLease = ({ context, event }: { context: JobContext; event: JobEvent }) =>
  "leaseId" in event && event.leaseId === context.leaseId;

const leaseLapsed = ({ context, event }: { context: JobContext; event: JobEvent }) =>
  event.type === "lease-expired" && context.leaseExpiresAt !== null && event.now >= context.leaseExpiresAt;

const releaseLease = { leaseId: null, leaseNode: null, leaseExpiresAt: null, claimedAt: null };

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
      event.type === "complete"
        ? {
            result: event.result,
            artifacts: event.artifacts ?? [],
            finishedLeaseId: event.leaseId,
            ...releaseLease,
          }
        : {},
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
    claimedAt: null,
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
            claimedAt: event.at,
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

type Args = { context: JobContext; event: JobEvent };
type Guard = (args: Args) => boolean;
type Assignment = (args: Args) => Partial<JobContext>;
interface CompiledTransition {
  guard: Guard | null;
  /** In xstate's order: the source's exit actions, the transition's, the target's entry (when the state changes). */
  assigns: Assignment[];
  target: JobState | null;
}
interface CompiledState {
  on: Map<string, CompiledTransition[]>;
  always: CompiledTransition[];
}

/**
 * The machine above compiled into a table, read from its own definition (state nodes, guard and
 * assign implementations): applying a transition thousands of times a second through xstate's
 * `resolveState` + `transition` costs more than the rest of the apply. The machine stays the one
 * source of truth; a unit test holds `nextJob` to xstate's answer for every state and event.
 * Compiling fails loudly on anything the table cannot express (nested states, non-assign actions).
 */
function compile(): Map<JobState, CompiledState> {
  const { guards, actions } = jobLifecycleMachine.implementations as {
    guards: Record<string, unknown>;
    actions: Record<string, unknown>;
  };
  const guardOf = (g: unknown): Guard | null => {
    if (g === undefined) return null;
    const impl = typeof g === "string" ? guards[g] : g;
    if (typeof impl !== "function" || "check" in impl)
      throw new Error(`job lifecycle: guard ${String(g)} not compilable`);
    return impl as Guard;
  };
  const assignmentOf = (a: unknown): Assignment => {
    const impl = (typeof a === "string" ? actions[a] : a) as { type?: string; assignment?: unknown } | undefined;
    if (impl?.type !== "xstate.assign" || impl.assignment === undefined) {
      throw new Error(`job lifecycle: action ${String(a)} is not an assign`);
    }
    const assignment = impl.assignment;
    if (typeof assignment === "function") return assignment as Assignment;
    const fields = Object.entries(assignment as Record<string, unknown>);
    return (args) => {
      const partial: Record<string, unknown> = {};
      for (const [key, value] of fields) partial[key] = typeof value === "function" ? value(args) : value;
      return partial as Partial<JobContext>;
    };
  };
  const root = jobLifecycleMachine.root;
  type Node = (typeof root.states)[string];
  const transitionOf = (t: {
    guard?: unknown;
    actions: readonly unknown[];
    target?: readonly Node[];
    source: Node;
  }): CompiledTransition => {
    const target = t.target?.[0];
    if ((t.target?.length ?? 0) > 1 || (target && target.parent !== root)) {
      throw new Error(`job lifecycle: transition from ${t.source.key} has a target the table cannot express`);
    }
    if (target === t.source) throw new Error(`job lifecycle: self-transition on ${t.source.key} not compilable`);
    const actions = target ? [...t.source.exit, ...t.actions, ...target.entry] : t.actions;
    return { guard: guardOf(t.guard), assigns: actions.map(assignmentOf), target: (target?.key as JobState) ?? null };
  };
  const table = new Map<JobState, CompiledState>();
  for (const [key, node] of Object.entries(root.states)) {
    if (Object.keys(node.states).length > 0) throw new Error(`job lifecycle: nested states in ${key} not compilable`);
    table.set(key as JobState, {
      on: new Map([...node.transitions].map(([event, ts]) => [event, ts.map(transitionOf)])),
      always: (node.always ?? []).map(transitionOf),
    });
  }
  return table;
}

const TABLE = compile();

function stateOf(state: JobState): CompiledState {
  const s = TABLE.get(state);
  if (!s) throw new Error(`job lifecycle: unknown state "${state}"`);
  return s;
}

/** Guards in order, as xstate picks: the first enabled transition wins. */
function enabled(transitions: readonly CompiledTransition[] | undefined, args: Args): CompiledTransition | undefined {
  if (!transitions) return undefined;
  for (const t of transitions) if (!t.guard || t.guard(args)) return t;
  return undefined;
}

function take(state: JobState, context: JobContext, event: JobEvent, t: CompiledTransition) {
  let next = context;
  for (const assign of t.assigns) next = { ...next, ...assign({ context: next, event }) };
  return { state: t.target ?? state, context: next };
}

/**
 * The machine's answer to `event` in `state` with `context`, eventless transitions included: the same
 * value and context as xstate's `transition`. When nothing is enabled the very same context object comes back.
 */
export function nextJob(
  state: JobState,
  context: JobContext,
  event: JobEvent,
): { state: JobState; context: JobContext } {
  const first = enabled(stateOf(state).on.get(event.type), { context, event });
  let at = first ? take(state, context, event, first) : { state, context };
  // As in xstate, eventless transitions follow whether or not the event was taken; a flat machine's
  // chain visits each state at most once.
  for (let hops = 0; hops < TABLE.size; hops++) {
    const next = enabled(stateOf(at.state).always, { context: at.context, event });
    if (!next) return at;
    at = take(at.state, at.context, event, next);
  }
  throw new Error(`job lifecycle: eventless transitions loop from ${state} on ${event.type}`);
}
