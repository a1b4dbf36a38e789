import * as v from "valibot";
import { defineCommand } from "../consensus/state-machine.ts";
import { matchResults, models, runHistory, runs, workHistory, workItems } from "../db/schema.ts";
import { intIn, timeMsSchema } from "../net/bounds.ts";
import { FREE_FORM_DEPTH, freeForm } from "../net/free-form.ts";
import { sha256Schema } from "../sync/model.ts";
import { workAdd, workCancel } from "../work/commands.ts";
import { normalizedItemSchema } from "../work/model.ts";
import { runPolicySchema } from "./policy.ts";
import { archiveOldModels, configureRun, readModel, readRun, registerModel, setModelState, stepRun } from "./state.ts";

/**
 * The replicated commands of training runs. The leader proposes them; every time, id, seed and verdict is
 * chosen by the leader and arrives in the payload, so each apply is a pure function of the log.
 */

const runName = v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a run name"));
const modelRef = v.object({ id: sha256Schema, generation: intIn(0, 1_000_000_000) });
const count = intIn(0, 1_000_000_000);
const cause = v.pipe(v.string(), v.maxLength(1_000));
const at = timeMsSchema;

/** Every event of the run loop as it may stand in the log; those that the completion of an item makes are here too. */
export const runEventSchema = v.variant("type", [
  v.object({ type: v.literal("best-set"), model: modelRef, at, cause }),
  v.object({ type: v.literal("games"), count }),
  v.object({ type: v.literal("train-queued"), generation: count, itemId: v.string(), at }),
  v.object({ type: v.literal("trained"), itemId: v.string(), model: modelRef, gate: v.boolean(), at }),
  v.object({ type: v.literal("train-failed"), itemId: v.string(), error: cause }),
  v.object({
    type: v.literal("match-result"),
    candidate: sha256Schema,
    opponent: v.string(),
    itemId: v.string(),
    pairs: v.tuple([count, count, count, count, count]),
  }),
  v.object({
    type: v.literal("decided"),
    candidate: sha256Schema,
    verdict: v.picklist(["promoted", "rejected"]),
    evidence: freeForm({ maxDepth: FREE_FORM_DEPTH, maxBytes: 16 * 1024 }),
    at,
  }),
  v.object({ type: v.literal("pause"), cause }),
  v.object({ type: v.literal("resume"), cause }),
]);

/** Creates a run from its `[runs.<name>]` policy, or brings its policy up to date with the cluster file. */
export const runConfigure = defineCommand({
  name: "run.configure",
  payload: v.object({ run: runName, policy: runPolicySchema, now: at }),
  tables: [runs, runHistory],
  apply(db, p, ctx) {
    const cause = `[runs.${p.run}] of the cluster file`;
    return configureRun(db, p.run, p.policy, { now: p.now, term: ctx.term, cause });
  },
});

/**
 * One step of a run: an event for its loop (optional), and the work items the step starts or ends. Items are
 * added and cancelled only when the event was taken (or there is none), so a step that lost a race (a second
 * `train-queued` for one generation) starts nothing. The models' states follow the decisions.
 */
export const runStep = defineCommand({
  name: "run.step",
  payload: v.object({
    run: runName,
    event: v.optional(runEventSchema),
    cause,
    add: v.optional(v.pipe(v.array(normalizedItemSchema), v.maxLength(1_000)), []),
    cancel: v.optional(v.pipe(v.array(v.string()), v.maxLength(1_000)), []),
    /** A model to register before the event (generation 0 from a file the leader holds). */
    register: v.optional(
      v.object({
        id: sha256Schema,
        generation: intIn(0, 1_000_000_000),
        file: v.pipe(v.string(), v.minLength(1), v.maxLength(1_024)),
        node: v.pipe(v.string(), v.maxLength(64)),
      }),
    ),
    now: at,
  }),
  tables: [runs, runHistory, models, matchResults, workItems, workHistory],
  apply(db, p, ctx) {
    const run = readRun(db, p.run);
    if (!run) return { taken: false, reason: `no run "${p.run}"` };
    const stepAt = { now: p.now, term: ctx.term, cause: p.cause };
    if (p.register && run.stage !== "bootstrapping") {
      return { taken: false, reason: `run "${p.run}" has its generation 0 already` };
    }
    if (p.register) {
      const { id, generation, file, node } = p.register;
      registerModel(db, {
        id,
        run: p.run,
        generation,
        parent: null,
        itemId: null,
        node,
        file,
        state: "candidate",
        metrics: null,
        createdAt: p.now,
      });
    }
    if (p.event?.type === "best-set") {
      const model = readModel(db, p.event.model.id);
      if (!model || model.run !== p.run)
        return { taken: false, reason: `model ${p.event.model.id} is not of run "${p.run}"` };
      if (model.state === "archived")
        return { taken: false, reason: `model ${p.event.model.id} is archived: its file is no longer kept` };
    }
    const step = p.event ? stepRun(db, p.run, p.event as never, stepAt) : null;
    if (step && !step.taken)
      return { taken: false, reason: `the run's ${run.stage} stage did not take ${p.event?.type}` };
    if (step && p.event) {
      followModels(db, step.before.context, step.after.context, p.event.type, p.now);
      archiveOldModels(db, p.run, p.now);
    }
    if (p.add.length > 0) workAdd.apply(db, { items: p.add, now: p.now }, ctx);
    for (const id of p.cancel) workCancel.apply(db, { id, reason: p.cause, now: p.now }, ctx);
    return { taken: true, stage: step?.after.stage ?? run.stage };
  },
});

/** Model states after a step: a decision promotes or rejects the candidate; an operator's best-set abandons it. */
function followModels(
  db: Parameters<typeof stepRun>[0],
  before: { candidate: { id: string } | null; best: { id: string } | null },
  after: {
    candidate: { id: string } | null;
    best: { id: string } | null;
    lastDecision: { candidate: string; verdict: string } | null;
  },
  event: string,
  now: number,
): void {
  if (event === "decided" && before.candidate && after.lastDecision?.candidate === before.candidate.id) {
    setModelState(db, before.candidate.id, after.lastDecision.verdict === "promoted" ? "promoted" : "rejected", now);
  } else if (event === "best-set" && before.candidate && !after.candidate) {
    setModelState(db, before.candidate.id, "rejected", now);
  }
  if (after.best && after.best.id !== before.best?.id && event === "best-set") {
    setModelState(db, after.best.id, "promoted", now);
  }
}

export const RUN_COMMANDS = [runConfigure, runStep];
