/**
 * The self-play populator's decision, as a pure function: how many self-play items each run should add so
 * that every capable slot in the cluster stays busy, shared among the runs by weight, within the queue's
 * room. The leader runs it on each tick with what the replicated state and the membership view say; the
 * simulator runs it with whatever it likes.
 */

export interface RunDemand {
  name: string;
  weight: number;
  /** Paused by an operator, or without a best model to play yet: it gets no self-play. */
  active: boolean;
  /** Its self-play items not yet finished: queued, claimed or running. */
  outstanding: number;
}

export interface PopulatorInput {
  runs: readonly RunDemand[];
  /** Self-play slots on live nodes that run self-play. */
  slots: number;
  /** Items the queue takes before its soft limit. */
  room: number;
  /** Items kept ready per slot, beyond the one running, so a finishing slot never waits for the next tick. */
  readyPerSlot?: number;
}

export interface PopulatorTarget {
  run: string;
  /** Outstanding self-play items this run should have. */
  target: number;
  /** Items to add now. */
  add: number;
  /** Why it adds nothing, when it does not. */
  why?: string;
}

export function populatorTargets(input: PopulatorInput): PopulatorTarget[] {
  const active = input.runs.filter((r) => r.active && r.weight > 0);
  const total = Math.max(0, Math.floor(input.slots)) * (1 + (input.readyPerSlot ?? 1));
  const shares = apportion(
    total,
    active.map((r) => r.weight),
  );
  const targets = new Map(active.map((r, i) => [r.name, shares[i] ?? 0]));
  const wanted = input.runs.map((r) => Math.max(0, (targets.get(r.name) ?? 0) - r.outstanding));
  const granted = apportionUpTo(Math.max(0, input.room), wanted);
  return input.runs.map((r, i) => {
    const target = targets.get(r.name) ?? 0;
    const add = granted[i] ?? 0;
    if (add > 0) return { run: r.name, target, add };
    return { run: r.name, target, add, why: whyNone(r, target, wanted[i] ?? 0, input) };
  });
}

function whyNone(run: RunDemand, target: number, wanted: number, input: PopulatorInput): string {
  if (!run.active) return "paused, or no best model to play yet";
  if (input.slots <= 0) return "no live node has a free self-play slot";
  if (wanted > 0) return `the queue is at its soft limit (${wanted} more wanted)`;
  return `${run.outstanding} self-play items outstanding, target ${target}`;
}

/** Splits `total` into integers proportional to `weights` (largest remainder; ties to the earlier). */
export function apportion(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (total <= 0 || sum <= 0) return weights.map(() => 0);
  const exact = weights.map((w) => (total * w) / sum);
  const out = exact.map(Math.floor);
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => ({ i, rest: x - Math.floor(x) })).sort((a, b) => b.rest - a.rest || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    out[i] = (out[i] ?? 0) + 1;
    left--;
  }
  return out;
}

/** Grants `room` among `wanted` in proportion to what each wants (a share of less than all is below each want). */
function apportionUpTo(room: number, wanted: readonly number[]): number[] {
  const sum = wanted.reduce((a, b) => a + b, 0);
  return sum <= room ? [...wanted] : apportion(room, wanted);
}
