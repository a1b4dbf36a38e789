import type { RunContext, RunStage } from "../machines/run-loop.ts";
import type { RunPolicy } from "./policy.ts";

/** Whether the run should queue its next training now, and in words why (not), as `GET /runs/<name>` shows it. */
export interface TrainingVerdict {
  due: boolean;
  why: string;
}

/**
 * The training trigger as a pure function: enough new games since the last training and the cooldown passed,
 * only while the run collects (one training per generation: never while one trains or a candidate is gated).
 */
export function trainingDue(
  stage: RunStage,
  run: Pick<RunContext, "paused" | "newGames" | "lastTrainingAt" | "lastGeneration">,
  policy: Pick<RunPolicy, "train_after_games" | "train_cooldown">,
  now: number,
): TrainingVerdict {
  if (run.paused) return { due: false, why: "paused" };
  if (stage === "bootstrapping") return { due: false, why: "waiting for generation 0" };
  if (stage === "training") return { due: false, why: `training generation ${run.lastGeneration + 1}` };
  if (stage === "evaluating") return { due: false, why: `gating generation ${run.lastGeneration}` };
  if (run.newGames < policy.train_after_games) {
    return { due: false, why: `${run.newGames} of ${policy.train_after_games} new games` };
  }
  const readyAt = (run.lastTrainingAt ?? Number.NEGATIVE_INFINITY) + policy.train_cooldown;
  if (now < readyAt) return { due: false, why: `cooldown: ${Math.ceil((readyAt - now) / 1000)} s left` };
  return { due: true, why: `${run.newGames} new games: training generation ${run.lastGeneration + 1}` };
}
