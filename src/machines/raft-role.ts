import { assign, emit, setup } from "xstate";

/**
 * A Raft node's role and its timers. The consensus core sends it what happened (a leader was heard,
 * a higher term was seen, an election was won); it decides the role and emits what to do next
 * (`start-pre-vote`, `start-election`, `become-leader`, `send-heartbeats`). No I/O, no clock of its
 * own: the actor's clock is injected, so the simulator drives these delays from its own time.
 */
export type Role = "follower" | "pre-candidate" | "candidate" | "leader";

export interface RoleInput {
  electionMinMs: number;
  electionMaxMs: number;
  heartbeatMs: number;
  /** Uniform in [0, 1); seeded in the simulator. */
  random: () => number;
  /** Only voters campaign; a node outside the configuration just follows. */
  voter: boolean;
}

interface RoleContext extends RoleInput {
  electionTimeoutMs: number;
  /** False while this node cannot make its log and votes durable (a full disk): it neither leads nor campaigns. */
  storageOk: boolean;
}

/** Every event says why, so the trace answers "why did this node become leader". */
export type RoleEvent =
  | { type: "heard-leader"; cause: string }
  | { type: "granted-vote"; cause: string }
  | { type: "higher-term"; cause: string }
  | { type: "pre-vote-won"; cause: string }
  | { type: "vote-won"; cause: string }
  | { type: "lease-lost"; cause: string }
  | { type: "step-down"; cause: string }
  | { type: "timeout-now"; cause: string }
  | { type: "voter-status"; voter: boolean; cause: string }
  | { type: "storage-failed"; cause: string }
  | { type: "storage-ok"; cause: string }
  | { type: "election-window"; minMs: number; maxMs: number; cause: string };

export type RoleEffect =
  | { type: "start-pre-vote" }
  | { type: "start-election"; transfer: boolean }
  | { type: "become-leader" }
  | { type: "send-heartbeats" }
  | { type: "become-follower" };

const defaults: RoleInput = {
  electionMinMs: 500,
  electionMaxMs: 1000,
  heartbeatMs: 50,
  random: Math.random,
  voter: true,
};

export const raftRoleMachine = setup({
  types: {
    context: {} as RoleContext,
    events: {} as RoleEvent,
    emitted: {} as RoleEffect,
    input: {} as RoleInput | undefined,
  },
  delays: {
    // Always a number, even before input arrives (xstate's pure transition() builds actors without input).
    electionTimeout: ({ context }) => context.electionTimeoutMs ?? defaults.electionMaxMs,
    heartbeat: ({ context }) => context.heartbeatMs ?? defaults.heartbeatMs,
  },
  actions: {
    drawTimeout: assign({
      electionTimeoutMs: ({ context }) =>
        Math.round(context.electionMinMs + context.random() * (context.electionMaxMs - context.electionMinMs)),
    }),
    storageFailed: assign({ storageOk: false }),
  },
  guards: {
    mayCampaign: ({ context }) => (context.voter ?? true) && (context.storageOk ?? true),
  },
}).createMachine({
  id: "raft",
  context: ({ input }) => {
    const i = { ...defaults, ...(input as Partial<RoleInput> | undefined) };
    return { ...i, electionTimeoutMs: i.electionMaxMs, storageOk: true };
  },
  initial: "follower",
  on: {
    "higher-term": { target: ".follower", reenter: true },
    "voter-status": { actions: assign({ voter: ({ event }) => event.voter }) },
    "storage-ok": { actions: assign({ storageOk: true }) },
    "election-window": {
      actions: assign({ electionMinMs: ({ event }) => event.minMs, electionMaxMs: ({ event }) => event.maxMs }),
    },
  },
  states: {
    follower: {
      entry: ["drawTimeout", emit({ type: "become-follower" })],
      after: {
        electionTimeout: [
          { guard: "mayCampaign", target: "pre-candidate" },
          { target: "follower", reenter: true },
        ],
      },
      on: {
        "heard-leader": { target: "follower", reenter: true },
        "granted-vote": { target: "follower", reenter: true },
        "timeout-now": {
          guard: "mayCampaign",
          target: "candidate",
          actions: emit({ type: "start-election", transfer: true }),
        },
        "storage-failed": { actions: "storageFailed" },
      },
    },
    "pre-candidate": {
      entry: ["drawTimeout", emit({ type: "start-pre-vote" })],
      after: { electionTimeout: { target: "pre-candidate", reenter: true } },
      on: {
        "pre-vote-won": { target: "candidate", actions: emit({ type: "start-election", transfer: false }) },
        "heard-leader": { target: "follower" },
        "granted-vote": { target: "follower" },
        "storage-failed": { target: "follower", actions: "storageFailed" },
      },
    },
    candidate: {
      entry: "drawTimeout",
      after: { electionTimeout: { target: "pre-candidate" } },
      on: {
        "vote-won": { target: "leader" },
        "heard-leader": { target: "follower" },
        "storage-failed": { target: "follower", actions: "storageFailed" },
      },
    },
    leader: {
      entry: emit({ type: "become-leader" }),
      initial: "active",
      states: {
        active: {
          entry: emit({ type: "send-heartbeats" }),
          after: { heartbeat: { target: "active", reenter: true } },
        },
      },
      on: {
        "lease-lost": { target: "follower" },
        "step-down": { target: "follower" },
        "storage-failed": { target: "follower", actions: "storageFailed" },
      },
    },
  },
});
