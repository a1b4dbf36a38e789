import type { Db } from "../db/client.ts";
import type { Retired } from "../sync/model.ts";
import { type ModelKept, modelsRetired } from "./retention.ts";
import { listRuns } from "./state.ts";

/**
 * The retention rules the replicated state sets for a data category: each run's retired game epochs and its
 * archived models. Empty on a node that holds no replicated state; it learns the rules from its peers.
 */
export function retiredFiles(db: Db, category: string): Retired[] {
  const rules: Retired[] = [];
  for (const run of listRuns(db)) {
    const below = run.context.games?.retiredBelow ?? 0;
    if (run.policy.games === category && below > 0) rules.push({ under: run.name, below, except: [] });
    if (run.policy.models === category) {
      const rule = modelsRetired(run.name, modelStates(db, run.name), run.policy.keep_models);
      if (rule) rules.push(rule);
    }
  }
  return rules;
}

/** What retention reads of a run's models (sync asks every round: no metrics, no files, no parsing). */
function modelStates(db: Db, run: string): ModelKept[] {
  return db.$client.prepare("SELECT id, generation, state FROM models WHERE run = ?").all(run) as ModelKept[];
}
