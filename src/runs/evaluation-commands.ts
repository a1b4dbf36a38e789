import { eq } from "drizzle-orm";
import * as v from "valibot";
import { defineCommand } from "../consensus/state-machine.ts";
import { evaluations, matchResults, workHistory, workItems } from "../db/schema.ts";
import { timeMsSchema } from "../net/bounds.ts";
import { FREE_FORM_DEPTH, freeForm } from "../net/free-form.ts";
import { workAdd, workCancel } from "../work/commands.ts";
import { normalizedItemSchema } from "../work/model.ts";
import { abtestParamsSchema, EVALUATION_ID, readEvaluation, tournamentParamsSchema } from "./evaluation-state.ts";

/** The replicated commands of A/B tests and tournaments (their state and results: ./evaluation-state.ts). */

const text = (max: number) => v.pipe(v.string(), v.maxLength(max));

export const evalCreate = defineCommand({
  name: "eval.create",
  payload: v.object({
    id: v.pipe(v.string(), v.regex(EVALUATION_ID)),
    run: text(32),
    kind: v.picklist(["abtest", "tournament"]),
    players: v.pipe(v.array(text(64)), v.minLength(2), v.maxLength(32)),
    params: v.union([abtestParamsSchema, tournamentParamsSchema]),
    cause: text(1_000),
    now: timeMsSchema,
  }),
  tables: [evaluations],
  apply(db, p) {
    if (readEvaluation(db, p.id)) return { created: false };
    const results = p.kind === "abtest" ? { pairs: [0, 0, 0, 0, 0] } : { games: {} };
    db.insert(evaluations)
      .values({ ...p, state: "running", results, counted: [], outcome: null, createdAt: p.now, updatedAt: p.now })
      .run();
    return { created: true };
  },
});

/** The leader's step of an evaluation: items to add or cancel, and (once) its end with the outcome. */
export const evalStep = defineCommand({
  name: "eval.step",
  payload: v.object({
    id: text(64),
    add: v.optional(v.pipe(v.array(normalizedItemSchema), v.maxLength(1_000)), []),
    cancel: v.optional(v.pipe(v.array(v.string()), v.maxLength(1_000)), []),
    end: v.optional(
      v.object({
        state: v.picklist(["done", "cancelled"]),
        outcome: freeForm({ maxDepth: FREE_FORM_DEPTH, maxBytes: 64 * 1024 }),
      }),
    ),
    cause: text(1_000),
    now: timeMsSchema,
  }),
  tables: [evaluations, matchResults, workItems, workHistory],
  apply(db, p, ctx) {
    const row = readEvaluation(db, p.id);
    if (!row) return { taken: false, reason: `no evaluation "${p.id}"` };
    const ending = p.end && row.state === "running";
    if (p.end && !ending) return { taken: false, reason: `evaluation "${p.id}" is ${row.state}` };
    if (row.state === "running" && p.add.length > 0) workAdd.apply(db, { items: p.add, now: p.now }, ctx);
    for (const id of p.cancel) workCancel.apply(db, { id, reason: p.cause, now: p.now }, ctx);
    if (ending && p.end) {
      db.update(evaluations)
        .set({ state: p.end.state, outcome: p.end.outcome, cause: p.cause, updatedAt: p.now })
        .where(eq(evaluations.id, p.id))
        .run();
    }
    return { taken: true };
  },
});

export const EVALUATION_COMMANDS = [evalCreate, evalStep];
