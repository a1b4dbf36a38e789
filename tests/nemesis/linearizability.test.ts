import { describe, expect, test } from "bun:test";
import { seededRandom } from "../sim/rng.ts";
import { checkRegister, type RegisterOp } from "./linearizability.ts";

const w = (value: string, call: number, ret: number): RegisterOp => ({ kind: "write", value, call, ret });
const r = (value: string | null, call: number, ret: number): RegisterOp => ({ kind: "read", value, call, ret });

describe("the register checker", () => {
  test("sequential histories: a read of the latest write passes, a stale read fails with its witness", () => {
    expect(checkRegister([w("a", 0, 1), r("a", 2, 3), w("b", 4, 5), r("b", 6, 7)])).toEqual({ ok: true });
    const stale = checkRegister([w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]);
    expect(stale.ok).toBe(false);
    expect(stale.ok === false && stale.witness.map((o) => o.value)).toEqual(["a", "b", "a"]);
    expect(checkRegister([r(null, 0, 1), w("a", 2, 3)])).toEqual({ ok: true });
    expect(checkRegister([w("a", 0, 1), r(null, 2, 3)]).ok).toBe(false);
  });

  test("concurrent operations may take effect in either order, but every read must agree on one", () => {
    // Two overlapping writes; reads after both may see either, as long as they agree.
    expect(checkRegister([w("a", 0, 10), w("b", 0, 10), r("a", 11, 12), r("a", 13, 14)])).toEqual({ ok: true });
    expect(checkRegister([w("a", 0, 10), w("b", 0, 10), r("b", 11, 12), r("b", 13, 14)])).toEqual({ ok: true });
    expect(checkRegister([w("a", 0, 10), w("b", 0, 10), r("a", 11, 12), r("b", 13, 14)]).ok).toBe(false);
    // A read overlapping a write may see the old or the new value; a later read cannot go back.
    expect(checkRegister([w("a", 0, 1), w("b", 2, 10), r("a", 3, 4), r("b", 5, 6)])).toEqual({ ok: true });
    expect(checkRegister([w("a", 0, 1), w("b", 2, 10), r("b", 3, 4), r("a", 5, 6)]).ok).toBe(false);
  });

  test("a write whose outcome is unknown may take effect late, or never", () => {
    const lost = w("x", 1, Number.POSITIVE_INFINITY);
    expect(checkRegister([w("a", 0, 1), lost, r("a", 5, 6)])).toEqual({ ok: true });
    expect(checkRegister([w("a", 0, 1), lost, r("a", 5, 6), r("x", 100, 101)])).toEqual({ ok: true });
    // ... but not before it was called.
    expect(checkRegister([w("a", 0, 1), r("x", 2, 3), w("x", 4, Number.POSITIVE_INFINITY)]).ok).toBe(false);
  });

  test("random sequential runs of a real register pass, and the same runs with one read corrupted fail", () => {
    const random = seededRandom(7);
    for (let run = 0; run < 50; run++) {
      const ops: RegisterOp[] = [];
      let value: string | null = null;
      let t = 0;
      for (let i = 0; i < 60; i++) {
        if (random() < 0.5) {
          value = `v${run}.${i}`;
          ops.push(w(value, t, t + 1));
        } else ops.push(r(value, t, t + 1));
        t += 2;
      }
      expect(checkRegister(ops)).toEqual({ ok: true });
      const reads = ops.flatMap((o, i) => (o.kind === "read" && i > 0 && o.value !== null ? [i] : []));
      const victim = reads[Math.floor(random() * reads.length)];
      if (victim === undefined) continue;
      const corrupted = ops.map((o, i) => (i === victim ? r("never-written", o.call, o.ret) : o));
      expect(checkRegister(corrupted).ok).toBe(false);
    }
  });

  test("many concurrent clients over a real register: the cache keeps the search within its budget", () => {
    // 8 clients, each op overlapping others; the register applies each op at a random instant within it.
    const random = seededRandom(11);
    const ops: RegisterOp[] = [];
    const events: Array<{ at: number; apply: () => void }> = [];
    let value: string | null = null;
    for (let c = 0; c < 8; c++) {
      let t = random() * 5;
      for (let i = 0; i < 60; i++) {
        const call = t;
        const ret = t + 1 + random() * 10;
        const at = call + random() * (ret - call);
        if (random() < 0.4) {
          const op = w(`c${c}.${i}`, call, ret);
          ops.push(op);
          events.push({ at, apply: () => (value = op.value) });
        } else {
          const op = r(null, call, ret);
          ops.push(op);
          events.push({ at, apply: () => (op.value = value) });
        }
        t = ret + random() * 3;
      }
    }
    for (const e of events.sort((a, b) => a.at - b.at)) e.apply();
    // Within the default step budget: a search without the cache would not end.
    expect(checkRegister(ops)).toEqual({ ok: true });
  });
});
