/**
 * A linearizability checker for a history of register operations (Wing and Gong's search with Lowe's cache, as
 * Porcupine does it): is there one order of the operations, each taking effect at an instant between its call
 * and its return, in which every read returns the latest write? Histories are checked per key (a register per
 * key is P-compositional), and an operation whose outcome is unknown (a write that timed out) may take effect
 * at any time after its call, or never.
 */

export type RegisterOp =
  | { kind: "write"; value: string; call: number; ret: number }
  | { kind: "read"; value: string | null; call: number; ret: number };

export type Verdict =
  | { ok: true }
  | { ok: false; reason: string; witness: RegisterOp[] }
  /** The search ran out of its step budget: neither proven nor refuted. */
  | { ok: "unknown"; steps: number };

interface Entry {
  op: number;
  isCall: boolean;
  time: number;
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

/** Checks one key's operations; `ret = Infinity` marks an operation whose outcome is unknown. */
export function checkRegister(
  ops: readonly RegisterOp[],
  initial: string | null = null,
  maxSteps = 5_000_000,
): Verdict {
  const head = buildList(ops);
  const finite = ops.filter((o) => Number.isFinite(o.ret)).length;
  const linearized = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  const cache = new Map<string, Set<string | null>>();
  const stack: Array<{ entry: Entry; state: string | null }> = [];
  let state = initial;
  let done = 0;
  let steps = 0;
  let deepest = 0;
  let entry = head.next;
  while (done < finite) {
    if (++steps > maxSteps) return { ok: "unknown", steps };
    if (entry === null) return refuted(ops, deepest);
    if (entry.isCall) {
      const op = ops[entry.op] as RegisterOp;
      const next = op.kind === "write" ? op.value : state;
      const legal = op.kind === "write" || op.value === state;
      if (legal && remember(cache, linearized, entry.op, next)) {
        stack.push({ entry, state });
        deepest = Math.max(deepest, stack.length);
        state = next;
        if (Number.isFinite(op.ret)) done++;
        lift(entry);
        entry = head.next;
        continue;
      }
      entry = entry.next;
      continue;
    }
    // A return whose call is not linearized yet: the order so far cannot be extended; undo the last choice.
    const last = stack.pop();
    if (!last) return refuted(ops, deepest);
    const op = ops[last.entry.op] as RegisterOp;
    if (Number.isFinite(op.ret)) done--;
    state = last.state;
    unlift(last.entry);
    clearBit(linearized, last.entry.op);
    entry = last.entry.next;
  }
  return { ok: true };
}

/** Calls before returns at the same instant: operations that touch at a point count as concurrent. */
function buildList(ops: readonly RegisterOp[]): Entry {
  const entries: Entry[] = [];
  ops.forEach((op, i) => {
    const call: Entry = { op: i, isCall: true, time: op.call, match: null, prev: null, next: null };
    const ret: Entry = { op: i, isCall: false, time: op.ret, match: null, prev: null, next: null };
    call.match = ret;
    entries.push(call, ret);
  });
  entries.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall));
  const head: Entry = { op: -1, isCall: false, time: Number.NEGATIVE_INFINITY, match: null, prev: null, next: null };
  let last = head;
  for (const e of entries) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

/** Takes a call and its return out of the list (the operation is placed). */
function lift(call: Entry): void {
  unlink(call);
  if (call.match) unlink(call.match);
}

function unlift(call: Entry): void {
  if (call.match) relink(call.match);
  relink(call);
}

function unlink(e: Entry): void {
  if (e.prev) e.prev.next = e.next;
  if (e.next) e.next.prev = e.prev;
}

function relink(e: Entry): void {
  if (e.prev) e.prev.next = e;
  if (e.next) e.next.prev = e;
}

/** Marks `op` placed; false (and unmarked) if this set of placed operations already led to this state. */
function remember(
  cache: Map<string, Set<string | null>>,
  bits: Uint32Array,
  op: number,
  state: string | null,
): boolean {
  setBit(bits, op);
  const key = bits.join(",");
  const seen = cache.get(key);
  if (seen?.has(state)) {
    clearBit(bits, op);
    return false;
  }
  if (seen) seen.add(state);
  else cache.set(key, new Set([state]));
  return true;
}

function setBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5] = (bits[i >>> 5] as number) | (1 << (i & 31));
}

function clearBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5] = (bits[i >>> 5] as number) & ~(1 << (i & 31));
}

/**
 * The refutation, with a witness where an obvious one exists: a read that returned a value overwritten before it
 * began (its write, the write after it, the read), as a stale read leaves behind.
 */
function refuted(ops: readonly RegisterOp[], deepest: number): Verdict {
  const reason = `no linearization of ${ops.length} operations (the search placed at most ${deepest} in one order)`;
  const writes = ops.filter((o) => o.kind === "write");
  for (const read of ops) {
    if (read.kind !== "read" || !Number.isFinite(read.ret)) continue;
    const source = writes.find((w) => w.value === read.value);
    const after = writes.find((w) => source && w.call > source.ret && w.ret < read.call);
    if (source && after) return { ok: false, reason, witness: [source, after, read] };
  }
  return { ok: false, reason, witness: [] };
}
