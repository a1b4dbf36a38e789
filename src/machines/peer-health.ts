import { assign, setup } from "xstate";

/**
 * What one node believes about one peer. SWIM's precedence rules live in the guards:
 * a higher incarnation is newer news; at equal incarnation suspect beats alive, dead and left beat both.
 * No timers here: the membership core sends `suspicion-expired` when its clock says so,
 * which keeps the machine a pure function of (state, event).
 */
export type PeerState = "alive" | "suspect" | "dead" | "left";

export type PeerHealthEvent =
  | { type: "alive"; incarnation: number }
  | { type: "suspect"; incarnation: number }
  | { type: "dead"; incarnation: number }
  | { type: "left"; incarnation: number }
  | { type: "suspicion-expired" };

export interface PeerHealthContext {
  incarnation: number;
}

const newer = ({ context }: { context: PeerHealthContext }, params: { incarnation: number }) =>
  params.incarnation > context.incarnation;
const notOlder = ({ context }: { context: PeerHealthContext }, params: { incarnation: number }) =>
  params.incarnation >= context.incarnation;

/** Accept an event when its incarnation passes `guard`, adopting that incarnation (and moving to `target`). */
const accept = (guard: "newer" | "notOlder", target?: PeerState) => ({
  guard: { type: guard, params: ({ event }: { event: { incarnation: number } }) => event },
  actions: { type: "adopt" as const, params: ({ event }: { event: { incarnation: number } }) => event },
  ...(target ? { target } : {}),
});

export const peerHealthMachine = setup({
  types: {
    context: {} as PeerHealthContext,
    events: {} as PeerHealthEvent,
    input: {} as Partial<PeerHealthContext> | undefined,
  },
  guards: { newer, notOlder },
  actions: { adopt: assign((_, params: { incarnation: number }) => ({ incarnation: params.incarnation })) },
}).createMachine({
  id: "peer",
  context: ({ input }) => ({ incarnation: input?.incarnation ?? 0 }),
  initial: "alive",
  states: {
    alive: {
      on: {
        alive: accept("newer"),
        suspect: accept("notOlder", "suspect"),
        dead: accept("notOlder", "dead"),
        left: accept("notOlder", "left"),
      },
    },
    suspect: {
      on: {
        alive: accept("newer", "alive"),
        suspect: accept("newer"),
        dead: accept("notOlder", "dead"),
        left: accept("notOlder", "left"),
        "suspicion-expired": { target: "dead" },
      },
    },
    dead: {
      on: {
        alive: accept("newer", "alive"),
        dead: accept("newer"),
        left: accept("notOlder", "left"),
      },
    },
    left: {
      on: { alive: accept("newer", "alive") },
    },
  },
});
