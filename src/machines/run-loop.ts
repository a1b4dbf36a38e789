import * as v from "valibot";
import { assign, setup } from "xstate";
import { wireNumberSchema } from "../net/bounds.ts";

/**
 * One training run's loop: bootstrap, then self-play (always, while not paused) with one training per
 * generation, the candidate gated against the best, and the best pointer moved only by a decision. Applied
 * inside the replicated state machine like the job lifecycle: a pure function of (state, event), every time
 * and every decision (the SPRT's verdict, computed by the leader from the counts) arriving in the event, so a
 * new leader resumes the loop wherever the log left it. Fencing lives in the guards: a result for another
 * generation, another candidate or an item already counted changes nothing, and nothing flips a decision.
 */
export const runStageSchema = v.picklist(["bootstrapping", "collecting", "training", "evaluating"]);
export type RunStage = v.InferOutput<typeof runStageSchema>;

export const modelRefSchema = v.object({
  /** The model file's SHA-256: its identity. */
  id: v.string(),
  generation: wireNumberSchema,
});
export type ModelRef = v.InferOutput<typeof modelRefSchema>;

/** Game pairs by the candidate's score in half-points over the pair: 0, 1, 2, 3, 4. */
export const pentanomialSchema = v.tuple([
  wireNumberSchema,
  wireNumberSchema,
  wireNumberSchema,
  wireNumberSchema,
  wireNumberSchema,
]);
export type Pentanomial = v.InferOutput<typeof pentanomialSchema>;

export const decisionSchema = v.object({
  candidate: v.string(),
  generation: wireNumberSchema,
  verdict: v.picklist(["promoted", "rejected"]),
  /** The evidence as the leader computed it (counts, LLR and bounds, games), kept with the decision. */
  evidence: v.record(v.string(), v.unknown()),
  at: wireNumberSchema,
  cause: v.string(),
});
export type Decision = v.InferOutput<typeof decisionSchema>;

export const gamesKeptSchema = v.object({
  /** Games per epoch still kept, keyed by the epoch's number. */
  byEpoch: v.record(v.string(), wireNumberSchema),
  /** Epochs below this one are retired. */
  retiredBelow: wireNumberSchema,
});
export type GamesKept = v.InferOutput<typeof gamesKeptSchema>;

/**
 * Counts `count` new games of `epoch` and retires the oldest epochs that the newer ones make unnecessary: the
 * newest epochs are kept until they hold `keep` games, and the epoch that crosses it is kept whole.
 */
export function countGames(kept: GamesKept, epoch: number, count: number, keep: number): GamesKept {
  if (epoch < kept.retiredBelow) return kept;
  const byEpoch: Record<string, number> = { ...kept.byEpoch, [epoch]: (kept.byEpoch[epoch] ?? 0) + count };
  const epochs = Object.keys(byEpoch)
    .map(Number)
    .sort((a, b) => b - a);
  let held = 0;
  let retiredBelow = kept.retiredBelow;
  for (const e of epochs) {
    if (held >= keep) {
      retiredBelow = Math.max(retiredBelow, e + 1);
      break;
    }
    held += byEpoch[e] ?? 0;
  }
  for (const e of epochs) if (e < retiredBelow) delete byEpoch[e];
  return { byEpoch, retiredBelow };
}

export const runContextSchema = v.object({
  best: v.nullable(modelRefSchema),
  /** The newest generation trained (promoted or not): the next training makes the one after it. */
  lastGeneration: wireNumberSchema,
  paused: v.boolean(),
  /** Games added since the last training was queued. */
  newGames: wireNumberSchema,
  /** Games kept per epoch (the folder they are in) and the epochs retired (absent in runs made before retention). */
  games: v.optional(gamesKeptSchema),
  lastTrainingAt: v.nullable(wireNumberSchema),
  /** The training item of the generation being made. */
  trainItem: v.nullable(v.string()),
  candidate: v.nullable(modelRefSchema),
  pairs: pentanomialSchema,
  /** Match items already counted for the current candidate (a duplicated report counts once). */
  countedItems: v.array(v.string()),
  trainingFailures: wireNumberSchema,
  lastDecision: v.nullable(decisionSchema),
});
export type RunContext = v.InferOutput<typeof runContextSchema>;

export type RunEvent =
  | { type: "best-set"; model: ModelRef; at: number; cause: string }
  | { type: "games"; count: number; epoch: number; keep: number }
  | { type: "train-queued"; generation: number; itemId: string; at: number }
  | { type: "trained"; itemId: string; model: ModelRef; gate: boolean; at: number }
  | { type: "train-failed"; itemId: string; error: string }
  | { type: "match-result"; candidate: string; opponent: string; itemId: string; pairs: Pentanomial }
  | { type: "decided"; candidate: string; verdict: Decision["verdict"]; evidence: Record<string, unknown>; at: number }
  | { type: "pause"; cause: string }
  | { type: "resume"; cause: string };

const ZERO: Pentanomial = [0, 0, 0, 0, 0];
const NO_GAMES: GamesKept = { byEpoch: {}, retiredBelow: 0 };

export const initialRunContext = (): RunContext => ({
  best: null,
  lastGeneration: 0,
  paused: false,
  newGames: 0,
  lastTrainingAt: null,
  trainItem: null,
  candidate: null,
  pairs: [...ZERO],
  countedItems: [],
  trainingFailures: 0,
  lastDecision: null,
});

type Args = { context: RunContext; event: RunEvent };

const clearCandidate = { trainItem: null, candidate: null, pairs: [...ZERO] as Pentanomial, countedItems: [] };

export const runLoopMachine = setup({
  types: { context: {} as RunContext, events: {} as RunEvent, input: {} as RunContext },
  guards: {
    nextGeneration: ({ context, event }: Args) =>
      event.type === "train-queued" && event.generation === context.lastGeneration + 1,
    ownTraining: ({ context, event }: Args) =>
      (event.type === "trained" || event.type === "train-failed") && event.itemId === context.trainItem,
    ungated: ({ context, event }: Args) =>
      event.type === "trained" && event.itemId === context.trainItem && !event.gate,
    newResultForCandidate: ({ context, event }: Args) =>
      event.type === "match-result" &&
      event.candidate === context.candidate?.id &&
      event.opponent === context.best?.id &&
      !context.countedItems.includes(event.itemId),
    decisionForCandidate: ({ context, event }: Args) =>
      event.type === "decided" && event.candidate === context.candidate?.id,
  },
  actions: {
    setBest: assign(({ context, event }) =>
      event.type === "best-set"
        ? { best: event.model, lastGeneration: Math.max(context.lastGeneration, event.model.generation) }
        : {},
    ),
    abandonCandidate: assign(() => clearCandidate),
    countGames: assign(({ context, event }) =>
      event.type === "games"
        ? {
            newGames: context.newGames + Math.max(0, event.count),
            games: countGames(context.games ?? NO_GAMES, event.epoch, Math.max(0, event.count), event.keep),
          }
        : {},
    ),
    startTraining: assign(({ event }) =>
      event.type === "train-queued" ? { trainItem: event.itemId, newGames: 0, lastTrainingAt: event.at } : {},
    ),
    takeCandidate: assign(({ event }) =>
      event.type === "trained"
        ? {
            candidate: event.model,
            lastGeneration: event.model.generation,
            pairs: [...ZERO] as Pentanomial,
            countedItems: [],
          }
        : {},
    ),
    adoptUngated: assign(({ event }) => {
      if (event.type !== "trained") return {};
      const decision: Decision = {
        candidate: event.model.id,
        generation: event.model.generation,
        verdict: "promoted",
        evidence: { gate: "none" },
        at: event.at,
        cause: "the run's gate is none: every candidate is adopted",
      };
      return { ...clearCandidate, best: event.model, lastGeneration: event.model.generation, lastDecision: decision };
    }),
    countFailure: assign(({ context }) => ({ ...clearCandidate, trainingFailures: context.trainingFailures + 1 })),
    addPairs: assign(({ context, event }) => {
      if (event.type !== "match-result") return {};
      const pairs = context.pairs.map((n, i) => n + Math.max(0, event.pairs[i] ?? 0)) as Pentanomial;
      return { pairs, countedItems: [...context.countedItems, event.itemId] };
    }),
    decide: assign(({ context, event }) => {
      if (event.type !== "decided" || !context.candidate) return {};
      const decision: Decision = {
        candidate: context.candidate.id,
        generation: context.candidate.generation,
        verdict: event.verdict,
        evidence: event.evidence,
        at: event.at,
        cause: `gate: ${event.verdict}`,
      };
      const best = event.verdict === "promoted" ? context.candidate : context.best;
      return { ...clearCandidate, best, lastDecision: decision };
    }),
    pause: assign({ paused: true }),
    resume: assign({ paused: false }),
  },
}).createMachine({
  id: "run",
  context: ({ input }) => input,
  initial: "bootstrapping",
  on: {
    pause: { actions: "pause" },
    resume: { actions: "resume" },
    games: { actions: "countGames" },
    // An operator's promote or rollback: the best moves, and a generation in flight is abandoned.
    "best-set": { target: ".collecting", actions: ["setBest", "abandonCandidate"] },
  },
  states: {
    bootstrapping: {},
    collecting: {
      on: { "train-queued": { guard: "nextGeneration", target: "training", actions: "startTraining" } },
    },
    training: {
      on: {
        trained: [
          { guard: "ungated", target: "collecting", actions: "adoptUngated" },
          { guard: "ownTraining", target: "evaluating", actions: "takeCandidate" },
        ],
        "train-failed": { guard: "ownTraining", target: "collecting", actions: "countFailure" },
      },
    },
    evaluating: {
      on: {
        "match-result": { guard: "newResultForCandidate", actions: "addPairs" },
        decided: { guard: "decisionForCandidate", target: "collecting", actions: "decide" },
      },
    },
  },
});
