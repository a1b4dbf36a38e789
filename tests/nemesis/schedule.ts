import { seededRandom } from "../sim/rng.ts";

/**
 * The nemesis's faults, as a pure function of a seed: the same seed gives the same schedule, so a failing run can
 * be replayed (`npm run nemesis -- --seed S --minutes M`). Nodes are indexes 0..n-1. One fault at a time, each
 * healed before the next.
 */
export type Fault =
  /** Two sides that cannot reach each other (a majority and a minority, or halves of an even split). */
  | { kind: "partition"; sides: [number[], number[]] }
  /** Two sides cut apart except through one node that reaches both. */
  | { kind: "bridge"; sides: [number[], number[]]; bridge: number }
  /** `from`'s requests to `to` are dropped; `to`'s requests to `from` still work. */
  | { kind: "one-way"; from: number; to: number }
  | { kind: "isolate"; node: number }
  | { kind: "kill"; node: number }
  | { kind: "pause"; node: number }
  | { kind: "disk-full"; node: number };

export interface ScheduledFault {
  /** When the fault starts, in ms after the clients start. */
  at: number;
  fault: Fault;
  /** How long it lasts before it is healed. */
  forMs: number;
}

export const FAULT_KINDS: readonly Fault["kind"][] = [
  "partition",
  "bridge",
  "one-way",
  "isolate",
  "kill",
  "pause",
  "disk-full",
];

export function schedule(seed: number, durationMs: number, nodes: number, kinds = FAULT_KINDS): ScheduledFault[] {
  const random = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const shuffled = () => {
    const xs = Array.from({ length: nodes }, (_, i) => i);
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [xs[i], xs[j]] = [xs[j] as number, xs[i] as number];
    }
    return xs;
  };
  const out: ScheduledFault[] = [];
  // The first seconds and the last few run clean: a leader first, and time to recover before the final reads.
  let at = 2_000 + Math.floor(random() * 2_000);
  while (at < durationMs - 6_000) {
    const forMs = 2_000 + Math.floor(random() * 4_000);
    const order = shuffled();
    const cut = 1 + Math.floor(random() * Math.floor(nodes / 2));
    const kind = pick(kinds);
    const fault: Fault =
      kind === "partition"
        ? { kind, sides: [order.slice(0, cut), order.slice(cut)] }
        : kind === "bridge"
          ? { kind, bridge: order[0] as number, sides: [order.slice(1, 1 + cut), order.slice(1 + cut)] }
          : kind === "one-way"
            ? { kind, from: order[0] as number, to: order[1] as number }
            : { kind, node: order[0] as number };
    out.push({ at, fault, forMs: Math.min(forMs, durationMs - 6_000 - at) });
    at += forMs + 1_000 + Math.floor(random() * 2_000);
  }
  return out;
}

export function describeFault(f: Fault, name: (i: number) => string): string {
  const list = (xs: number[]) => xs.map(name).join(",");
  switch (f.kind) {
    case "partition":
      return `partition ${list(f.sides[0])} | ${list(f.sides[1])}`;
    case "bridge":
      return `bridge ${list(f.sides[0])} | ${list(f.sides[1])} through ${name(f.bridge)}`;
    case "one-way":
      return `one-way: ${name(f.from)}'s requests to ${name(f.to)} dropped`;
    default:
      return `${f.kind} ${name(f.node)}`;
  }
}
