import { describe, expect, test } from "bun:test";
import { initialTransition, transition } from "xstate";
import { type PeerHealthEvent, type PeerState, peerHealthMachine } from "../../src/machines/peer-health.ts";

/**
 * SWIM precedence, as a table. Every row starts from a peer at incarnation CUR in a given state and applies one
 * event at a lower (CUR-1), equal (CUR) or higher (CUR+1) incarnation. Outcomes are written "state@incarnation".
 */
const CUR = 5;
const LOW = CUR - 1;
const HIGH = CUR + 1;

type Kind = "alive" | "suspect" | "dead" | "left";
type Outcome = `${PeerState}@${number}`;
/** [lower, equal, higher] */
type Row = readonly [Outcome, Outcome, Outcome];

const TABLE: Record<PeerState, Record<Kind, Row> & { "suspicion-expired": Outcome }> = {
  alive: {
    // alive only refreshes with a strictly newer incarnation
    alive: ["alive@5", "alive@5", "alive@6"],
    suspect: ["alive@5", "suspect@5", "suspect@6"],
    dead: ["alive@5", "dead@5", "dead@6"],
    left: ["alive@5", "left@5", "left@6"],
    "suspicion-expired": "alive@5",
  },
  suspect: {
    alive: ["suspect@5", "suspect@5", "alive@6"],
    suspect: ["suspect@5", "suspect@5", "suspect@6"],
    dead: ["suspect@5", "dead@5", "dead@6"],
    left: ["suspect@5", "left@5", "left@6"],
    "suspicion-expired": "dead@5",
  },
  dead: {
    alive: ["dead@5", "dead@5", "alive@6"],
    suspect: ["dead@5", "dead@5", "dead@5"],
    dead: ["dead@5", "dead@5", "dead@6"],
    left: ["dead@5", "left@5", "left@6"],
    "suspicion-expired": "dead@5",
  },
  left: {
    alive: ["left@5", "left@5", "alive@6"],
    suspect: ["left@5", "left@5", "left@5"],
    dead: ["left@5", "left@5", "left@5"],
    left: ["left@5", "left@5", "left@5"],
    "suspicion-expired": "left@5",
  },
};

const STATES: readonly PeerState[] = ["alive", "suspect", "dead", "left"];
const KINDS: readonly Kind[] = ["alive", "suspect", "dead", "left"];
const LEVELS = [
  ["lower", LOW],
  ["equal", CUR],
  ["higher", HIGH],
] as const;

/** A snapshot in `state` at incarnation CUR, reached through the machine's own transitions. */
function snapshotIn(state: PeerState) {
  const [initial] = initialTransition(peerHealthMachine, { incarnation: CUR });
  if (state === "alive") return initial;
  const [next] = transition(peerHealthMachine, initial, { type: state, incarnation: CUR });
  return next;
}

function outcome(snapshot: ReturnType<typeof snapshotIn>): Outcome {
  return `${snapshot.value as PeerState}@${snapshot.context.incarnation}`;
}

describe("peerHealthMachine setup", () => {
  test("starts alive at the given incarnation, or 0 when none is given", () => {
    const [withInput] = initialTransition(peerHealthMachine, { incarnation: 7 });
    expect(outcome(withInput)).toBe("alive@7");
    const [withoutInput] = initialTransition(peerHealthMachine, {});
    expect(outcome(withoutInput)).toBe("alive@0");
  });

  test("the starting snapshots used by the table are what they claim", () => {
    for (const state of STATES) expect(outcome(snapshotIn(state))).toBe(`${state}@${CUR}`);
  });
});

describe("peerHealthMachine precedence table", () => {
  for (const from of STATES) {
    for (const kind of KINDS) {
      LEVELS.forEach(([level, incarnation], i) => {
        const expected = TABLE[from][kind][i];
        test(`${from}@${CUR} + ${kind}@${incarnation} (${level}) -> ${expected}`, () => {
          const before = snapshotIn(from);
          const event: PeerHealthEvent = { type: kind, incarnation };
          const [after] = transition(peerHealthMachine, before, event);
          expect(outcome(after)).toBe(expected as Outcome);
          // Pure: the input snapshot is untouched.
          expect(outcome(before)).toBe(`${from}@${CUR}`);
        });
      });
    }
    const expected = TABLE[from]["suspicion-expired"];
    test(`${from}@${CUR} + suspicion-expired -> ${expected}`, () => {
      const [after] = transition(peerHealthMachine, snapshotIn(from), { type: "suspicion-expired" });
      expect(outcome(after)).toBe(expected);
    });
  }
});

describe("peerHealthMachine rules in words", () => {
  const apply = (from: PeerState, event: PeerHealthEvent) =>
    outcome(transition(peerHealthMachine, snapshotIn(from), event)[0]);

  test("alive needs a strictly higher incarnation to override anything", () => {
    for (const from of STATES) {
      expect(apply(from, { type: "alive", incarnation: CUR })).toBe(`${from}@${CUR}`);
      expect(apply(from, { type: "alive", incarnation: HIGH })).toBe(`alive@${HIGH}`);
    }
  });

  test("only alive with a higher incarnation leaves `left`", () => {
    for (const kind of KINDS) {
      for (const [, incarnation] of LEVELS) {
        const result = apply("left", { type: kind, incarnation });
        expect(result.startsWith("left@")).toBe(!(kind === "alive" && incarnation > CUR));
      }
    }
  });

  test("suspicion-expired only moves suspect to dead, keeping the incarnation", () => {
    const moved = STATES.filter((s) => !apply(s, { type: "suspicion-expired" }).startsWith(`${s}@`));
    expect(moved).toEqual(["suspect"]);
    expect(apply("suspect", { type: "suspicion-expired" })).toBe(`dead@${CUR}`);
  });

  test("a long chain of events ends where the precedence rules say", () => {
    const [s0] = initialTransition(peerHealthMachine, { incarnation: 1 });
    const events: PeerHealthEvent[] = [
      { type: "suspect", incarnation: 1 }, // alive@1 -> suspect@1
      { type: "alive", incarnation: 1 }, // stale refutation: ignored
      { type: "alive", incarnation: 2 }, // refuted -> alive@2
      { type: "suspect", incarnation: 1 }, // old news: ignored
      { type: "dead", incarnation: 2 }, // -> dead@2
      { type: "suspect", incarnation: 3 }, // dead ignores suspect
      { type: "alive", incarnation: 3 }, // rejoined -> alive@3
      { type: "left", incarnation: 3 }, // -> left@3
      { type: "dead", incarnation: 9 }, // left ignores dead
    ];
    let s = s0;
    const seen: string[] = [];
    for (const e of events) {
      [s] = transition(peerHealthMachine, s, e);
      seen.push(outcome(s));
    }
    expect(seen).toEqual([
      "suspect@1",
      "suspect@1",
      "alive@2",
      "alive@2",
      "dead@2",
      "dead@2",
      "alive@3",
      "left@3",
      "left@3",
    ]);
  });
});
