import { randomUUID } from "node:crypto";
import type { Db } from "../db/client.ts";
import type { RunDriver } from "./driver.ts";
import { eloInputsVersion, VersionedCache } from "./elo-cache.ts";
import { eloTable } from "./elo-table.ts";
import { standings } from "./evaluation-plan.ts";
import {
  type AbtestParams,
  type EvaluationKind,
  evaluationsOf,
  openEvaluationItems,
  readEvaluation,
  type TournamentParams,
} from "./evaluation-state.ts";
import { BASELINE } from "./policy.ts";
import { decisionsOf, listRuns, modelsOf, readModel, readRun, runHistoryOf, selfplayGamesByNode } from "./state.ts";

/**
 * What operators ask of training runs: their state and why they wait, models, Elo, history; and the actions
 * they take (pause, resume, promote, roll back), each a replicated step through the leader.
 */

export class RunError extends Error {
  constructor(
    readonly status: 404 | 409 | 422,
    message: string,
    readonly field?: string,
    /** The error code clients see (default: by status). */
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface RunServiceOptions {
  db: Db;
  driver: RunDriver;
  propose: (command: { name: string; payload: unknown }) => Promise<{ result: unknown }>;
  now?: () => number;
  /** The nodes this one knows to hold a model's file (data sync's view). */
  holders?: (modelId: string) => string[];
  /** The live nodes that run a job type (who must get a candidate before they can gate it). */
  runners?: (type: string) => string[];
  /** What a run's Elo table is computed from (default: eloInputsVersion); the table is refitted when it changes. */
  eloVersion?: (run: string) => string;
}

export class RunService {
  private readonly eloTables = new VersionedCache<ReturnType<typeof eloTable>>();

  constructor(private readonly opts: RunServiceOptions) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  list() {
    const explained = this.opts.driver.explain(this.now());
    return listRuns(this.opts.db).map((row) => {
      const why = explained.find((w) => w.run === row.name);
      return {
        name: row.name,
        stage: row.stage,
        paused: row.context.paused,
        best: row.context.best,
        candidate: row.context.candidate,
        generation: row.context.lastGeneration,
        newGames: row.context.newGames,
        why: why?.why ?? null,
        lastDecision: row.context.lastDecision,
      };
    });
  }

  get(name: string) {
    const row = this.row(name);
    const why = this.opts.driver.explain(this.now()).find((w) => w.run === name);
    const models = modelsOf(this.opts.db, name);
    const counts: Record<string, number> = {};
    for (const m of models) counts[m.state] = (counts[m.state] ?? 0) + 1;
    const syncing = this.syncing(row);
    return {
      name,
      stage: row.stage,
      why: [why?.why, syncing].filter((x) => x).join("; ") || null,
      sprt: why?.sprt ?? null,
      context: row.context,
      policy: row.policy,
      models: counts,
      history: runHistoryOf(this.opts.db, name, 50),
    };
  }

  models(name: string) {
    this.row(name);
    return modelsOf(this.opts.db, name).map((m) => ({ ...m, holders: this.opts.holders?.(m.id) ?? null }));
  }

  /** While a candidate is gated: the nodes that play matches and do not hold it yet. */
  private syncing(row: { stage: string; context: { candidate: { id: string } | null }; policy: { match: string } }) {
    const candidate = row.context.candidate;
    if (row.stage !== "evaluating" || !candidate || !this.opts.holders || !this.opts.runners) return null;
    const holders = new Set(this.opts.holders(candidate.id));
    const waiting = this.opts.runners(row.policy.match).filter((n) => !holders.has(n));
    return waiting.length > 0 ? `candidate syncing to ${waiting.join(", ")}` : null;
  }

  history(name: string, limit: number) {
    this.row(name);
    return runHistoryOf(this.opts.db, name, limit);
  }

  /**
   * The run's Elo table: Bradley-Terry over every match played, generation 0 at 0, each model tied to its parent
   * by a prior, the baselines rated in the same fit; with each rating's chance of being stronger than the best.
   */
  elo(name: string) {
    const row = this.row(name);
    const version = this.opts.eloVersion?.(name) ?? eloInputsVersion(this.opts.db, name);
    const best = row.context.best?.id ?? null;
    return this.eloTables.read(name, version, (previous) => eloTable(this.opts.db, name, best, previous));
  }

  /**
   * What a run has produced: self-play games per hour by node (the last hour), each generation's training and gate
   * (losses, samples, the decision and its games), and the promotions over time.
   */
  analytics(name: string) {
    this.row(name);
    const now = this.now();
    const byNode = selfplayGamesByNode(this.opts.db, name, now - 3_600_000);
    const decisions = new Map<string, { verdict: string; at: number; evidence: Record<string, unknown> }>();
    for (const h of decisionsOf(this.opts.db, name)) {
      const detail = h.detail as { candidate?: string; verdict?: string; evidence?: Record<string, unknown> } | null;
      if (detail?.candidate) {
        decisions.set(detail.candidate, { verdict: detail.verdict ?? "", at: h.at, evidence: detail.evidence ?? {} });
      }
    }
    const generations = modelsOf(this.opts.db, name).map((m) => {
      const metrics = (m.metrics ?? {}) as { loss?: unknown; samples?: unknown; samplesPerSecond?: unknown };
      const decision = decisions.get(m.id);
      return {
        generation: m.generation,
        model: m.id,
        state: m.state,
        node: m.node,
        trainedAt: m.createdAt,
        loss: metrics.loss ?? null,
        samples: metrics.samples ?? null,
        samplesPerSecond: metrics.samplesPerSecond ?? null,
        decision: decision
          ? {
              verdict: decision.verdict,
              at: decision.at,
              games: decision.evidence.games ?? null,
              llr: decision.evidence.llr ?? null,
            }
          : null,
      };
    });
    return {
      run: name,
      /** Games per hour: each node's self-play games completed in the last hour. */
      selfplayLastHour: byNode,
      generations,
      promotions: generations
        .filter((g) => g.decision?.verdict === "promoted")
        .map((g) => ({ generation: g.generation, at: g.decision?.at })),
      /** The Elo table as each decision saw it ({"g3": [elo, low, high], "random": [...]}): the run's Elo over time. */
      eloHistory: [...decisions.values()]
        .filter((d) => d.evidence.ratings !== undefined)
        .sort((a, b) => a.at - b.at)
        .map((d) => ({ at: d.at, verdict: d.verdict, ratings: d.evidence.ratings })),
    };
  }

  evaluations(name: string, kind: EvaluationKind) {
    this.row(name);
    return evaluationsOf(this.opts.db, name, kind).map((e) => ({
      ...e,
      counted: e.counted.length,
      standings: e.kind === "tournament" ? standings(e.players, e.results.games ?? {}) : undefined,
    }));
  }

  /** Starts an A/B test of model `a` against model `b`: the gate's sequential test, with its own bounds. */
  async abtest(name: string, input: { id?: string; a: string; b: string; params: AbtestParams }) {
    this.row(name);
    for (const [field, id] of [
      ["a", input.a],
      ["b", input.b],
    ] as const)
      this.model(name, id, `body.${field}`);
    if (input.a === input.b) throw new RunError(422, "an A/B test needs two different models", "body.b");
    return this.createEvaluation(name, "abtest", [input.a, input.b], input.params, input.id);
  }

  /** Starts a round-robin tournament among models of the run (and baselines). */
  async tournament(name: string, input: { id?: string; players: string[]; params: TournamentParams }) {
    this.row(name);
    input.players.forEach((p, i) => {
      if (!BASELINE.test(p)) this.model(name, p, `body.players[${i}]`);
    });
    if (new Set(input.players).size !== input.players.length)
      throw new RunError(422, "a player is named twice", "body.players");
    if (input.players.filter((p) => !BASELINE.test(p)).length === 0) {
      throw new RunError(422, "a tournament needs at least one model", "body.players");
    }
    return this.createEvaluation(name, "tournament", input.players, input.params, input.id);
  }

  /** Ends an A/B test or tournament now, with its open match items. */
  async cancelEvaluation(id: string, reason: string) {
    const row = readEvaluation(this.opts.db, id);
    if (!row) throw new RunError(404, `no A/B test or tournament "${id}"`, undefined, "no_such_evaluation");
    const payload = {
      id,
      add: [],
      cancel: openEvaluationItems(this.opts.db, id),
      end: { state: "cancelled", outcome: { reason } },
      cause: `cancelled: ${reason}`,
      now: this.now(),
    };
    const { result } = await this.opts.propose({ name: "eval.step", payload });
    if (!(result as { taken: boolean }).taken) throw new RunError(409, (result as { reason: string }).reason);
    return readEvaluation(this.opts.db, id);
  }

  private async createEvaluation(name: string, kind: EvaluationKind, players: string[], params: unknown, id?: string) {
    const evaluationId = id ?? `${kind === "abtest" ? "ab" : "t"}-${randomUUID().slice(0, 8)}`;
    const existing = readEvaluation(this.opts.db, evaluationId);
    if (existing)
      throw new RunError(409, `"${evaluationId}" already names an evaluation of run "${existing.run}"`, "body.id");
    const payload = { id: evaluationId, run: name, kind, players, params, cause: "by an operator", now: this.now() };
    await this.opts.propose({ name: "eval.create", payload });
    return readEvaluation(this.opts.db, evaluationId);
  }

  private model(run: string, id: string, field: string) {
    const model = readModel(this.opts.db, id);
    if (!model || model.run !== run) throw new RunError(404, `run "${run}" has no model ${id}`, field);
    if (model.state === "archived") {
      throw new RunError(409, `model ${id} is archived (runs.${run}.keep_models): its file is no longer kept`, field);
    }
    return model;
  }

  async pause(name: string, reason: string) {
    this.row(name);
    return this.step(name, { type: "pause", cause: reason }, `paused: ${reason}`);
  }

  async resume(name: string, reason: string) {
    this.row(name);
    return this.step(name, { type: "resume", cause: reason }, `resumed: ${reason}`);
  }

  /** Makes a model of the run its best (an operator's promotion); a generation in flight is abandoned. */
  async promote(name: string, modelId: string, reason: string) {
    this.row(name);
    const model = this.model(name, modelId, "body.model");
    const cause = `operator: promote generation ${model.generation} (${reason})`;
    const event = { type: "best-set", model: { id: model.id, generation: model.generation }, at: this.now(), cause };
    return this.step(name, event, cause);
  }

  /** Back to the promoted model before the current best. */
  async rollback(name: string, reason: string) {
    const row = this.row(name);
    const best = row.context.best;
    const promoted = modelsOf(this.opts.db, name).filter((m) => m.state === "promoted" && m.id !== best?.id);
    const previous = promoted.filter((m) => m.generation < (best?.generation ?? 0)).at(-1);
    if (!previous)
      throw new RunError(409, `run "${name}" has no promoted model before generation ${best?.generation ?? 0}`);
    return this.promote(name, previous.id, `rollback: ${reason}`);
  }

  private async step(name: string, event: Record<string, unknown>, cause: string) {
    const payload = { run: name, event, cause, add: [], cancel: [], now: this.now() };
    const { result } = await this.opts.propose({ name: "run.step", payload });
    const outcome = result as { taken: boolean; reason?: string; stage?: string };
    if (!outcome.taken) throw new RunError(409, outcome.reason ?? "the run did not take the step");
    return { ...outcome, run: this.get(name) };
  }

  private row(name: string) {
    const row = readRun(this.opts.db, name);
    if (!row)
      throw new RunError(
        404,
        `no run "${name}" (runs: ${
          listRuns(this.opts.db)
            .map((r) => r.name)
            .join(", ") || "none"
        })`,
      );
    return row;
  }
}
