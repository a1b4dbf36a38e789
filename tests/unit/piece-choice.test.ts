import { describe, expect, test } from "bun:test";
import { choosePiece, nextReturn, type SourceStanding } from "../../src/sync/piece-choice.ts";

const source = (id: string, order: number, pieces?: number[], over: Partial<SourceStanding> = {}): SourceStanding => ({
  source: { id, ...(pieces ? { has: (p: number) => pieces.includes(p) } : {}) },
  order,
  inFlight: 0,
  failures: 0,
  notBefore: 0,
  ...over,
});

const base = { inFlight: new Set<number>(), tried: () => undefined, perSource: 2, now: 1_000 };
const chosen = (r: ReturnType<typeof choosePiece>) => (r ? [r.piece, r.source.source.id] : null);

describe("which piece to ask for, and from whom", () => {
  test("the rarest of the servable pieces first, the first of them in order", () => {
    const sources = [source("a", 0), source("b", 1, [2, 3])];
    // Pieces 0 and 1 only "a" has; 2 and 3 both do.
    expect(chosen(choosePiece({ ...base, missing: new Set([2, 0, 3, 1]), sources }))).toEqual([0, "a"]);
    expect(chosen(choosePiece({ ...base, missing: new Set([2, 3]), sources }))).toEqual([2, "a"]);
  });

  test("not a piece already in flight; not from a source that is full or benched", () => {
    const sources = [source("a", 0, undefined, { inFlight: 2 }), source("b", 1, undefined, { notBefore: 2_000 })];
    expect(choosePiece({ ...base, missing: new Set([0, 1]), sources })).toBeNull();
    const free = [...sources, source("c", 2)];
    expect(chosen(choosePiece({ ...base, missing: new Set([0, 1]), inFlight: new Set([0]), sources: free }))).toEqual([
      1,
      "c",
    ]);
  });

  test("prefers a source the piece has not failed from, then the least busy, the most reliable, the first listed", () => {
    const a = source("a", 0, undefined, { inFlight: 1 });
    const b = source("b", 1, undefined, { failures: 3 });
    const c = source("c", 2, undefined, { failures: 1 });
    const missing = new Set([7]);
    expect(chosen(choosePiece({ ...base, missing, sources: [a, b, c] }))).toEqual([7, "c"]);
    expect(chosen(choosePiece({ ...base, missing, sources: [a, b, c], tried: () => new Set(["b", "c"]) }))).toEqual([
      7,
      "a",
    ]);
    expect(chosen(choosePiece({ ...base, missing, sources: [source("x", 1), source("y", 0)] }))).toEqual([7, "y"]);
  });
});

describe("when to look again", () => {
  test("when the first benched source that holds a wanted piece comes back", () => {
    const sources = [
      source("a", 0, [9], { notBefore: 1_500 }),
      source("b", 1, [1], { notBefore: 3_000 }),
      source("c", 2, [1], { notBefore: 2_000 }),
    ];
    expect(nextReturn({ missing: new Set([1]), inFlight: new Set(), sources, now: 1_000 })).toBe(2_000);
    expect(nextReturn({ missing: new Set([1]), inFlight: new Set([1]), sources, now: 1_000 })).toBeNull();
  });
});
