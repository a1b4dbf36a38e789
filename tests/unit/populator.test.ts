import { describe, expect, test } from "bun:test";
import { apportion, populatorTargets, type RunDemand } from "../../src/runs/populator.ts";

const run = (name: string, over: Partial<RunDemand> = {}): RunDemand => ({
  name,
  weight: 1,
  active: true,
  outstanding: 0,
  ...over,
});

describe("the self-play populator's targets", () => {
  test("every slot busy plus one ready item per slot, shared by weight", () => {
    const out = populatorTargets({ runs: [run("a", { weight: 3 }), run("b")], slots: 8, room: 1_000 });
    expect(out).toEqual([
      { run: "a", target: 12, add: 12 },
      { run: "b", target: 4, add: 4 },
    ]);
  });

  test("what is outstanding counts: a second tick adds only what finished", () => {
    const out = populatorTargets({
      runs: [run("a", { weight: 3, outstanding: 12 }), run("b", { outstanding: 1 })],
      slots: 8,
      room: 1_000,
    });
    expect(out.map((t) => t.add)).toEqual([0, 3]);
    expect(out[0]?.why).toBe("12 self-play items outstanding, target 12");
  });

  test("a paused run gets nothing and says why; the others share its slots", () => {
    const out = populatorTargets({ runs: [run("a", { active: false }), run("b")], slots: 4, room: 100 });
    expect(out).toEqual([
      { run: "a", target: 0, add: 0, why: "paused, or no best model to play yet" },
      { run: "b", target: 8, add: 8 },
    ]);
  });

  test("the queue's room is shared in proportion to what each run wants, never past it", () => {
    const out = populatorTargets({ runs: [run("a", { weight: 3 }), run("b")], slots: 8, room: 8 });
    expect(out.map((t) => t.add)).toEqual([6, 2]);
    const full = populatorTargets({ runs: [run("a")], slots: 8, room: 0 });
    expect(full[0]?.why).toBe("the queue is at its soft limit (16 more wanted)");
  });

  test("no slots, no self-play", () => {
    expect(populatorTargets({ runs: [run("a")], slots: 0, room: 100 })[0]).toEqual({
      run: "a",
      target: 0,
      add: 0,
      why: "no live node has a free self-play slot",
    });
  });
});

describe("apportion", () => {
  test("largest remainders, summing to the total", () => {
    expect(apportion(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportion(7, [0.5, 0.25, 0.25])).toEqual([3, 2, 2]);
    expect(apportion(5, [0, 0])).toEqual([0, 0]);
    for (let total = 0; total < 50; total++) {
      expect(apportion(total, [5, 3, 2, 1]).reduce((a, b) => a + b, 0)).toBe(total);
    }
  });
});
