import { expect, test } from "bun:test";
import { trainingDue } from "../../src/runs/trigger.ts";

const policy = { train_after_games: 500, train_cooldown: 30_000 };
const run = { paused: false, newGames: 0, lastTrainingAt: null, lastGeneration: 4 };

test("the trigger waits for enough new games, then for the cooldown, and says so", () => {
  expect(trainingDue("collecting", { ...run, newGames: 312 }, policy, 0)).toEqual({
    due: false,
    why: "312 of 500 new games",
  });
  expect(trainingDue("collecting", { ...run, newGames: 500, lastTrainingAt: 100_000 }, policy, 112_000)).toEqual({
    due: false,
    why: "cooldown: 18 s left",
  });
  expect(trainingDue("collecting", { ...run, newGames: 500, lastTrainingAt: 100_000 }, policy, 130_000)).toEqual({
    due: true,
    why: "500 new games: training generation 5",
  });
  expect(trainingDue("collecting", { ...run, newGames: 501 }, policy, 0).due).toBe(true);
});

test("never while paused, bootstrapping, training or gating: one training per generation", () => {
  const ready = { ...run, newGames: 10_000 };
  expect(trainingDue("collecting", { ...ready, paused: true }, policy, 0).why).toBe("paused");
  expect(trainingDue("bootstrapping", ready, policy, 0).why).toBe("waiting for generation 0");
  expect(trainingDue("training", ready, policy, 0)).toEqual({ due: false, why: "training generation 5" });
  expect(trainingDue("evaluating", ready, policy, 0)).toEqual({ due: false, why: "gating generation 4" });
});
