import { describe, expect, test } from "bun:test";
import { initialTransition, type SnapshotFrom, transition } from "xstate";
import { initialRunContext, type RunEvent, runLoopMachine } from "../../src/machines/run-loop.ts";

/** The run loop as the replicated state applies it: a pure function of (state, event). */

type Snap = SnapshotFrom<typeof runLoopMachine>;

function play(...events: RunEvent[]): Snap {
  let [snap] = initialTransition(runLoopMachine, initialRunContext());
  for (const e of events) [snap] = transition(runLoopMachine, snap, e);
  return snap;
}

const gen0 = { id: "a".repeat(64), generation: 0 };
const gen1 = { id: "b".repeat(64), generation: 1 };
const gen2 = { id: "c".repeat(64), generation: 2 };
const boot: RunEvent = { type: "best-set", model: gen0, at: 1, cause: "bootstrap" };
const queue1: RunEvent = { type: "train-queued", generation: 1, itemId: "t1", at: 10 };
const trained1: RunEvent = { type: "trained", itemId: "t1", model: gen1, gate: true, at: 20 };
const result = (
  itemId: string,
  pairs: [number, number, number, number, number],
  candidate = gen1.id,
  opponent = gen0.id,
): RunEvent => ({
  type: "match-result",
  candidate,
  opponent,
  itemId,
  pairs,
});
const decided = (verdict: "promoted" | "rejected", candidate = gen1.id): RunEvent => ({
  type: "decided",
  candidate,
  verdict,
  evidence: { llr: verdict === "promoted" ? 3 : -3 },
  at: 30,
});

describe("the run loop", () => {
  test("bootstraps, collects games, and trains exactly once per generation", () => {
    expect(play().value).toBe("bootstrapping");
    const collecting = play(boot, { type: "games", count: 300, epoch: 0, keep: 100_000 });
    expect(collecting.value).toBe("collecting");
    expect(collecting.context.newGames).toBe(300);
    const training = play(boot, { type: "games", count: 300, epoch: 0, keep: 100_000 }, queue1, {
      ...queue1,
      itemId: "t1-again",
    });
    expect(training.value).toBe("training");
    expect(training.context).toMatchObject({ trainItem: "t1", newGames: 0, lastTrainingAt: 10 });
    expect(play(boot, { ...queue1, generation: 2 }).value).toBe("collecting");
  });

  test("only its own training's result makes the candidate", () => {
    const other = play(boot, queue1, { ...trained1, itemId: "t9" });
    expect(other.value).toBe("training");
    const evaluating = play(boot, queue1, trained1);
    expect(evaluating.value).toBe("evaluating");
    expect(evaluating.context.candidate).toEqual(gen1);
  });

  test("pairs add up; a duplicated report or another candidate's result counts nothing", () => {
    const snap = play(
      boot,
      queue1,
      trained1,
      result("m1", [0, 1, 2, 1, 0]),
      result("m1", [0, 1, 2, 1, 0]),
      result("m2", [1, 0, 0, 0, 3]),
      result("m3", [9, 9, 9, 9, 9], gen2.id),
      result("m4", [9, 9, 9, 9, 9], gen1.id, "random"),
    );
    expect(snap.context.pairs).toEqual([1, 1, 2, 1, 3]);
    expect(snap.context.countedItems).toEqual(["m1", "m2"]);
  });

  test("a promotion moves the best and keeps its evidence; late results and decisions change nothing", () => {
    const snap = play(boot, queue1, trained1, result("m1", [0, 0, 1, 2, 5]), decided("promoted"));
    expect(snap.value).toBe("collecting");
    expect(snap.context.best).toEqual(gen1);
    expect(snap.context.lastDecision).toMatchObject({ candidate: gen1.id, verdict: "promoted", evidence: { llr: 3 } });
    const late = [...[result("m2", [5, 0, 0, 0, 0]), decided("rejected")]].reduce(
      (s, e) => transition(runLoopMachine, s, e)[0],
      snap,
    );
    expect(late.context.best).toEqual(gen1);
    expect(late.context.lastDecision?.verdict).toBe("promoted");
    expect(late.context.pairs).toEqual([0, 0, 0, 0, 0]);
  });

  test("a rejection keeps the best; the next training makes the next generation", () => {
    const snap = play(boot, queue1, trained1, decided("rejected"));
    expect(snap.context.best).toEqual(gen0);
    expect(snap.context.lastDecision?.verdict).toBe("rejected");
    expect(play(boot, queue1, trained1, decided("rejected"), queue1).value).toBe("collecting");
    expect(
      play(boot, queue1, trained1, decided("rejected"), { type: "train-queued", generation: 2, itemId: "t2", at: 40 })
        .value,
    ).toBe("training");
  });

  test("with gate none the candidate is adopted at once", () => {
    const snap = play(boot, queue1, { ...trained1, gate: false });
    expect(snap.value).toBe("collecting");
    expect(snap.context.best).toEqual(gen1);
    expect(snap.context.lastDecision).toMatchObject({ verdict: "promoted", evidence: { gate: "none" } });
  });

  test("a failed training frees the generation to be trained again", () => {
    const snap = play(boot, queue1, { type: "train-failed", itemId: "t1", error: "exit code 1" });
    expect(snap.value).toBe("collecting");
    expect(snap.context.trainingFailures).toBe(1);
    expect(
      play(boot, queue1, { type: "train-failed", itemId: "t1", error: "x" }, { ...queue1, itemId: "t1b" }).value,
    ).toBe("training");
  });

  test("an operator's promote or rollback moves the best from any stage and abandons the candidate", () => {
    const snap = play(boot, queue1, trained1, result("m1", [0, 0, 0, 0, 1]), {
      type: "best-set",
      model: gen0,
      at: 50,
      cause: "rollback by operator",
    });
    expect(snap.value).toBe("collecting");
    expect(snap.context).toMatchObject({ best: gen0, candidate: null, pairs: [0, 0, 0, 0, 0], lastGeneration: 1 });
  });

  test("pause and resume keep the stage", () => {
    const paused = play(boot, queue1, { type: "pause", cause: "operator" });
    expect(paused.value).toBe("training");
    expect(paused.context.paused).toBe(true);
    expect(transition(runLoopMachine, paused, { type: "resume", cause: "operator" })[0].context.paused).toBe(false);
  });
});
