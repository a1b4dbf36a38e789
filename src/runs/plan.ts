import type { SprtState } from "../eval/sprt.ts";
import type { Pentanomial } from "../machines/run-loop.ts";
import type { NormalizedItem } from "../work/model.ts";
import type { RunPolicy } from "./policy.ts";
import { populatorTargets } from "./populator.ts";
import { sequentialTest } from "./sequential.ts";
import type { RunItem } from "./stage-item.ts";
import type { RunRow } from "./state.ts";
import { trainingDue } from "./trigger.ts";

/**
 * What the leader does for the runs on one tick, as a pure function of the replicated state, the queue's view
 * of the runs' unfinished items, the live nodes' slots and the clock: the steps it proposes (`run.step`
 * payloads) and, per run, why it waits. The simulator runs it as the node does.
 */

/** A run's unfinished item, as the queue holds it. */
export interface OpenItem {
  id: string;
  state: string;
  config: RunItem & Record<string, unknown>;
}

export interface RunView {
  row: RunRow;
  /** The policy in the cluster file now (it may differ from the row's: then it is configured first). */
  policy: RunPolicy;
  open: readonly OpenItem[];
  /** The bootstrap items: one still open (or completed), and how many gave up (the last one's error). */
  bootstrap: { open: boolean; failures: number; lastError: string | null };
  /** Games each baseline has played against each model, from the match tally. */
  baselineGames: (model: string, baseline: string) => number;
  /** Gate items of the current candidate that gave up for good, and the last one's error. */
  gateGaveUp: { items: number; lastError: string | null };
}

/**
 * Gate items of one candidate that may give up before the candidate is rejected as one that cannot be evaluated
 * (its file lost with the node that trained it, or a match command that always fails): the run moves on.
 */
export const GATE_GIVE_UPS = 3;

export interface PlanInput {
  runs: readonly RunView[];
  /** Runs in the cluster file that the replicated state lacks: configured first. */
  missing: ReadonlyArray<{ name: string; policy: RunPolicy }>;
  /** Free-standing capacity: slots of live nodes per job type (a node's slots over the template's). */
  slots: (type: string) => number;
  /** Live nodes with a GPU that run a job type (a training is held for them a while). */
  gpuNodes?: (type: string) => number;
  /** Items the queue takes before its soft limit. */
  room: number;
  now: number;
  /** A fresh unique id suffix and a 31-bit seed, from the leader's randomness. */
  newId: () => string;
  seed: () => number;
  /** Defaults for items the run adds. */
  defaults: (type: string) => { timeoutMs: number; maxAttempts: number };
}

export type PlannedStep =
  | { command: "run.configure"; payload: { run: string; policy: RunPolicy; now: number } }
  | {
      command: "eval.step";
      payload: {
        id: string;
        add: NormalizedItem[];
        cancel: string[];
        end?: { state: "done" | "cancelled"; outcome: Record<string, unknown> };
        cause: string;
        now: number;
      };
    }
  | {
      command: "run.step";
      payload: {
        run: string;
        event?: Record<string, unknown> & { type: string };
        cause: string;
        add: NormalizedItem[];
        cancel: string[];
        now: number;
      };
    };

export interface RunWhy {
  run: string;
  stage: string;
  why: string;
  sprt?: SprtState & { pairs: Pentanomial; maxGames: number };
}

export const PRIORITY = { bootstrap: 40, train: 30, match: 20, evaluation: 15, baseline: 10, selfplay: 0 } as const;

export function planRuns(input: PlanInput): { steps: PlannedStep[]; why: RunWhy[] } {
  const steps: PlannedStep[] = input.missing.map((m) => ({
    command: "run.configure" as const,
    payload: { run: m.name, policy: m.policy, now: input.now },
  }));
  const why: RunWhy[] = [];
  for (const view of input.runs) {
    if (JSON.stringify(view.row.policy) !== JSON.stringify(view.policy)) {
      steps.push({ command: "run.configure", payload: { run: view.row.name, policy: view.policy, now: input.now } });
    }
  }
  const deciding = new Set<string>();
  for (const view of input.runs) {
    const planned = planOne(view, input);
    steps.push(...planned.steps);
    why.push({ run: view.row.name, stage: view.row.stage, ...planned.why });
    if (planned.steps.some((s) => s.command === "run.step" && s.payload.event?.type === "decided")) {
      deciding.add(view.row.name);
    }
  }
  // A run whose gate decides now moves its self-play in the decision's own step.
  steps.push(...selfplaySteps(input, deciding));
  return { steps, why };
}

/** A work item of a run, with the type's timeout and attempts. */
export function item(
  input: PlanInput,
  id: string,
  type: string,
  priority: number,
  config: Record<string, unknown>,
): NormalizedItem {
  const { timeoutMs, maxAttempts } = input.defaults(type);
  return {
    id,
    type,
    priority,
    config,
    requirements: { capabilities: [], gpu: false, excludeNodes: [], gpuMemoryGb: 0, diskGb: 0, memoryGb: 0 },
    dependsOn: [],
    maxAttempts,
    timeoutMs,
  };
}

/** Self-play for every active run, shared by weight over the live self-play slots; stale queued items go. */
function selfplaySteps(input: PlanInput, deciding: ReadonlySet<string>): PlannedStep[] {
  const steps: PlannedStep[] = [];
  const demand = input.runs.map((view) => {
    if (deciding.has(view.row.name)) {
      return { name: view.row.name, weight: view.policy.weight, active: false, outstanding: 0 };
    }
    const best = view.row.context.best;
    const selfplay = view.open.filter((i) => i.config.stage === "selfplay");
    // Queued self-play of an older best is cancelled (running items finish: their games are still recent).
    const stale = selfplay.filter(
      (i) => i.config.model !== best?.id && (i.state === "pending" || i.state === "retry-wait"),
    );
    if (stale.length > 0 && best) {
      steps.push({
        command: "run.step",
        payload: {
          run: view.row.name,
          cause: `self-play moves to generation ${best.generation}`,
          add: [],
          cancel: stale.map((i) => i.id),
          now: input.now,
        },
      });
    }
    return {
      name: view.row.name,
      weight: view.policy.weight,
      active: !view.row.context.paused && best !== null,
      outstanding: selfplay.length - stale.length,
    };
  });
  const types = [...new Set(input.runs.map((v) => v.policy.selfplay))];
  const slots = types.reduce((a, t) => a + input.slots(t), 0);
  const targets = populatorTargets({ runs: demand, slots, room: input.room });
  for (const target of targets) {
    const view = input.runs.find((v) => v.row.name === target.run);
    const best = view?.row.context.best;
    if (!view || !best || target.add <= 0) continue;
    const add = Array.from({ length: target.add }, () => selfplayItem(view, best, input));
    steps.push({
      command: "run.step",
      payload: {
        run: view.row.name,
        cause: `self-play: ${target.add} items toward ${target.target}`,
        add,
        cancel: [],
        now: input.now,
      },
    });
  }
  return steps;
}

function selfplayItem(view: RunView, model: { id: string; generation: number }, input: PlanInput): NormalizedItem {
  const { row, policy } = view;
  return item(input, `${row.name}.selfplay.g${model.generation}.${input.newId()}`, policy.selfplay, PRIORITY.selfplay, {
    ...policy.params.selfplay,
    run: row.name,
    stage: "selfplay",
    generation: model.generation,
    epoch: row.context.lastGeneration,
    seed: input.seed(),
    model: model.id,
    games: policy.selfplay_games,
  });
}

/** How long a training waits for a node with a GPU, when a live one runs trainings, before any node may take it. */
const PREFER_GPU_MS = 60_000;

function trainItem(input: PlanInput, id: string, type: string, config: Record<string, unknown>): NormalizedItem {
  const base = item(input, id, type, PRIORITY.train, config);
  if ((input.gpuNodes?.(type) ?? 0) === 0) return base;
  return { ...base, requirements: { ...base.requirements, preferGpuUntil: input.now + PREFER_GPU_MS } };
}

/** A promotion's own step moves self-play to the new best at once: queued items of the old one are replaced. */
function selfplayHandover(view: RunView, best: { id: string; generation: number }, input: PlanInput) {
  const queued = view.open.filter(
    (i) => i.config.stage === "selfplay" && (i.state === "pending" || i.state === "retry-wait"),
  );
  return { cancel: queued.map((i) => i.id), add: queued.map(() => selfplayItem(view, best, input)) };
}

function planOne(view: RunView, input: PlanInput): { steps: PlannedStep[]; why: Omit<RunWhy, "run" | "stage"> } {
  const { row, policy } = view;
  const ctx = row.context;
  const name = row.name;
  const step = (cause: string, rest: Partial<Extract<PlannedStep, { command: "run.step" }>["payload"]> = {}) => ({
    command: "run.step" as const,
    payload: { run: name, cause, add: [], cancel: [], now: input.now, ...rest },
  });
  if (row.stage === "bootstrapping") {
    if ("model" in policy.bootstrap)
      return { steps: [], why: { why: "waiting for the leader to register generation 0" } };
    const { open, failures, lastError } = view.bootstrap;
    if (open) return { steps: [], why: { why: `waiting for generation 0 (bootstrap attempt ${failures + 1})` } };
    // An item that gave up is replaced by the next: a run never stays without a way to its generation 0.
    const boot = item(input, `${name}.bootstrap.${failures}`, policy.bootstrap.command, PRIORITY.bootstrap, {
      run: name,
      stage: "bootstrap",
      generation: 0,
      seed: input.seed(),
    });
    const cause =
      failures === 0 ? "bootstrap: making generation 0" : `bootstrap again (${failures} gave up; last: ${lastError})`;
    return { steps: [step(cause, { add: [boot] })], why: { why: cause } };
  }
  const steps: PlannedStep[] = [];
  const baseline = baselineSteps(view, input);
  steps.push(...baseline);
  if (ctx.paused) return { steps, why: { why: "paused by an operator" } };
  if (row.stage === "collecting") {
    const verdict = trainingDue(row.stage, ctx, policy, input.now);
    if (verdict.due && ctx.best) {
      const generation = ctx.lastGeneration + 1;
      const itemId = `${name}.train.g${generation}.${ctx.trainingFailures}`;
      const train = trainItem(input, itemId, policy.train, {
        ...policy.params.train,
        run: name,
        stage: "train",
        generation,
        seed: input.seed(),
        model: ctx.best.id,
        window: policy.window_games,
      });
      const event = { type: "train-queued", generation, itemId, at: input.now };
      steps.push(step(verdict.why, { event, add: [train] }));
    }
    return { steps, why: { why: verdict.why } };
  }
  if (row.stage === "training") {
    const open = view.open.find((i) => i.id === ctx.trainItem);
    const state = open ? `${open.state}` : "finishing";
    return { steps, why: { why: `training generation ${ctx.lastGeneration + 1} (item ${ctx.trainItem}: ${state})` } };
  }
  // Evaluating: the candidate against the best, in pairs, until the test decides or the games run out.
  const candidate = ctx.candidate;
  const best = ctx.best;
  if (!candidate || !best) return { steps, why: { why: "evaluating without a candidate" } };
  if (policy.gate === "none") return { steps, why: { why: "no gate" } };
  const gate = policy.gate;
  const pairs = ctx.pairs;
  const gating = view.open.filter(
    (i) => i.config.stage === "match" && i.config.gate !== false && i.config.candidate === candidate.id,
  );
  const test = sequentialTest(pairs, gate, gating.length, input.slots(policy.match));
  const { state, games } = test;
  const progress = { ...state, pairs, maxGames: gate.max_games };
  if (view.gateGaveUp.items >= GATE_GIVE_UPS) {
    const reason = `cannot be evaluated: ${view.gateGaveUp.items} gate items gave up (last: ${view.gateGaveUp.lastError ?? "no reason given"}): rejected`;
    const evidence = {
      pairs,
      games,
      llr: state.llr,
      gaveUp: view.gateGaveUp.items,
      lastError: view.gateGaveUp.lastError,
    };
    const event = { type: "decided", candidate: candidate.id, verdict: "rejected", evidence, at: input.now } as const;
    const cancel = gating.map((i) => i.id);
    steps.push(step(`generation ${candidate.generation}: ${reason}`, { event, cancel }));
    return { steps, why: { why: reason, sprt: progress } };
  }
  if (test.done) {
    const verdict = state.decision === "accept" ? "promoted" : "rejected";
    const reason =
      state.decision === "continue"
        ? `undecided after ${games} games (the gate's maximum): rejected`
        : `LLR ${state.llr.toFixed(2)} ${state.decision === "accept" ? `reached ${state.upper.toFixed(2)}` : `fell to ${state.lower.toFixed(2)}`}: ${verdict}`;
    const event = { type: "decided", candidate: candidate.id, verdict, evidence: test.evidence, at: input.now };
    const handover = verdict === "promoted" ? selfplayHandover(view, candidate, input) : { cancel: [], add: [] };
    const cancel = [...gating.map((i) => i.id), ...handover.cancel];
    steps.push(step(`generation ${candidate.generation}: ${reason}`, { event, cancel, add: handover.add }));
    return { steps, why: { why: reason, sprt: progress } };
  }
  if (test.add > 0) {
    const items = Array.from({ length: test.add }, () =>
      item(input, `${name}.match.g${candidate.generation}.${input.newId()}`, policy.match, PRIORITY.match, {
        ...policy.params.match,
        run: name,
        stage: "match",
        generation: candidate.generation,
        seed: input.seed(),
        candidate: candidate.id,
        opponent: best.id,
        gate: true,
        games: test.gamesPerItem,
      }),
    );
    steps.push(step(`gate: ${test.add} match items of ${gate.pairs_per_item} pairs`, { add: items }));
  }
  const why = `gating generation ${candidate.generation} against ${best.generation}: ${games} of at most ${gate.max_games} games, LLR ${state.llr.toFixed(2)} in (${state.lower.toFixed(2)}, ${state.upper.toFixed(2)})`;
  return { steps, why: { why, sprt: progress } };
}

/**
 * Games against the fixed baselines, so the Elo table has anchors that do not inflate: the best and the
 * candidate each play every baseline for about `baseline_share` of a gate's games.
 */
function baselineSteps(view: RunView, input: PlanInput): PlannedStep[] {
  const { policy, row } = view;
  if (policy.baselines.length === 0 || policy.baseline_share <= 0 || row.context.paused) return [];
  const maxGames = policy.gate === "none" ? 100 : policy.gate.max_games;
  const perBaseline = Math.max(2, 2 * Math.round((maxGames * policy.baseline_share) / policy.baselines.length / 2));
  const pairsPerItem = policy.gate === "none" ? 4 : policy.gate.pairs_per_item;
  const players = [row.context.best, row.context.candidate].filter((m) => m !== null);
  const add: NormalizedItem[] = [];
  for (const model of players) {
    for (const baseline of policy.baselines) {
      const open = view.open.some(
        (i) => i.config.stage === "match" && i.config.candidate === model.id && i.config.opponent === baseline,
      );
      const played = view.baselineGames(model.id, baseline);
      if (open || played >= perBaseline) continue;
      add.push(
        item(input, `${row.name}.baseline.g${model.generation}.${input.newId()}`, policy.match, PRIORITY.baseline, {
          ...policy.params.match,
          run: row.name,
          stage: "match",
          generation: model.generation,
          seed: input.seed(),
          candidate: model.id,
          opponent: baseline,
          gate: false,
          games: Math.min(2 * pairsPerItem, perBaseline - played),
        }),
      );
    }
  }
  if (add.length === 0) return [];
  return [
    {
      command: "run.step",
      payload: { run: row.name, cause: `baseline games for the Elo table`, add, cancel: [], now: input.now },
    },
  ];
}
