import * as v from "valibot";
import type { Db } from "../db/client.ts";
import type { Pentanomial } from "../machines/run-loop.ts";
import { evaluationMatchFinished } from "./evaluation-state.ts";
import { type RunItem, runItemOf, stageResultSchemas } from "./stage-item.ts";
import { addMatchResult, archiveOldModels, readRun, registerModel, setModelState, stepRun } from "./state.ts";

/**
 * A run's work item has ended: its result becomes the run's event, in the same apply that ended the item, so
 * each completion reaches the run exactly once however often its report was sent and whoever leads. A result
 * that breaks the stage's contract changes nothing here (the worker fails such an attempt before it reports).
 */
export interface FinishedItem {
  id: string;
  config: unknown;
  result: unknown;
  error: string | null;
}

export interface FinishedAt {
  now: number;
  term: number;
  node: string | null;
}

export function runItemFinished(db: Db, item: FinishedItem, outcome: "completed" | "dead-lettered", at: FinishedAt) {
  const run = runItemOf(item.config);
  const row = run ? readRun(db, run.run) : undefined;
  if (!run || !row) return;
  const by = at.node ? ` on ${at.node}` : "";
  const stepAt = (cause: string) => ({ now: at.now, term: at.term, cause });
  if (outcome === "dead-lettered") {
    if (run.stage === "train") {
      const cause = `training item ${item.id} gave up: ${item.error ?? "no reason given"}`;
      stepRun(db, run.run, { type: "train-failed", itemId: item.id, error: item.error ?? "failed" }, stepAt(cause));
    }
    return;
  }
  switch (run.stage) {
    case "selfplay": {
      const result = v.safeParse(stageResultSchemas.selfplay, item.result);
      if (!result.success) return;
      const cause = `${result.output.games} games from ${item.id}${by}`;
      const epoch = run.epoch ?? run.generation;
      const keep = row.policy.keep_games;
      stepRun(db, run.run, { type: "games", count: result.output.games, epoch, keep }, stepAt(cause));
      return;
    }
    case "bootstrap":
    case "train":
      modelWritten(db, item, run, at);
      return;
    case "match": {
      const result = v.safeParse(stageResultSchemas.match, item.result);
      if (!result.success || !run.candidate || !run.opponent) return;
      const { wins, draws, losses, pairs } = result.output;
      addMatchResult(db, run.run, run.candidate, run.opponent, { wins, draws, losses });
      if (run.eval) {
        const games = { wins, draws, losses, pairs: [...pairs] as Pentanomial };
        evaluationMatchFinished(db, run.eval, item.id, run.candidate, run.opponent, games, at.now);
      }
      if (run.gate === false) return;
      const cause = `+${wins} =${draws} -${losses} from ${item.id}${by}`;
      const event = {
        type: "match-result" as const,
        candidate: run.candidate,
        opponent: run.opponent,
        itemId: item.id,
        pairs: [...pairs] as Pentanomial,
      };
      stepRun(db, run.run, event, stepAt(cause));
      return;
    }
  }
}

/** Generation 0 becomes the best; a trained model becomes the candidate (or, with no gate, the best at once). */
function modelWritten(db: Db, item: FinishedItem, run: RunItem, at: FinishedAt): void {
  const published = v.safeParse(stageResultSchemas.published, item.result);
  if (!published.success) return;
  const { modelId, modelFile } = published.output;
  const metrics = metricsOf(item.result);
  const by = at.node ? ` on ${at.node}` : "";
  const model = { id: modelId, generation: run.generation };
  const fresh = registerModel(db, {
    id: modelId,
    run: run.run,
    generation: run.generation,
    parent: run.stage === "train" ? (run.model ?? null) : null,
    itemId: item.id,
    node: at.node,
    file: modelFile,
    state: "candidate",
    metrics,
    createdAt: at.now,
  });
  if (run.stage === "bootstrap") {
    // Only a run still waiting for generation 0 takes one: a bootstrap that ends late changes nothing.
    if (readRun(db, run.run)?.stage !== "bootstrapping") return;
    const cause = `generation 0 written by ${item.id}${by}`;
    const step = stepRun(db, run.run, { type: "best-set", model, at: at.now, cause }, { ...at, cause });
    if (step?.taken) setModelState(db, modelId, "promoted", at.now);
    return;
  }
  const gate = readRun(db, run.run)?.policy.gate !== "none";
  const cause = `generation ${run.generation} trained by ${item.id}${by}`;
  const step = stepRun(db, run.run, { type: "trained", itemId: item.id, model, gate, at: at.now }, { ...at, cause });
  if (!fresh) return;
  setModelState(db, modelId, !step?.taken ? "archived" : gate ? "evaluating" : "promoted", at.now);
  archiveOldModels(db, run.run, at.now);
}

/** What a training reported about itself (samples, losses, speed), kept with the model; bounded by the result's own cap. */
function metricsOf(result: unknown): Record<string, unknown> | null {
  if (result === null || typeof result !== "object") return null;
  const { modelId: _id, modelFile: _file, model: _model, ...rest } = result as Record<string, unknown>;
  return rest;
}
