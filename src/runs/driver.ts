import { randomInt, randomUUID } from "node:crypto";
import type { JobTemplate } from "../config/schema.ts";
import type { Db } from "../db/client.ts";
import type { Logger } from "../observability/log.ts";
import type { NodeView } from "../work/service.ts";
import { eloSnapshot } from "./elo-table.ts";
import { type EvaluationView, planEvaluations } from "./evaluation-plan.ts";
import { runningEvaluations } from "./evaluation-state.ts";
import { type OpenItem, type PlanInput, type PlannedStep, planRuns, type RunView, type RunWhy } from "./plan.ts";
import type { RunPolicy } from "./policy.ts";
import { runItemOf } from "./stage-item.ts";
import { listRuns, matchResultsOf } from "./state.ts";

/**
 * The leader's side of training runs: on each tick it reads the replicated state and the live nodes, asks
 * `planRuns` what to do and proposes it. It holds no state of its own, so a new leader carries on from the
 * log; followers run the same plan to explain what the run waits for.
 */

export interface RunDriverOptions {
  db: Db;
  runs: Readonly<Record<string, RunPolicy>>;
  jobs: Readonly<Record<string, JobTemplate>>;
  nodes: () => NodeView[];
  softLimit: number;
  queued: () => number;
  isLeader: () => boolean;
  propose: (command: { name: string; payload: unknown }) => Promise<{ result: unknown }>;
  log: Logger;
  now?: () => number;
  /** Generation 0 from a file (`bootstrap = { model = ... }`): copied into this node's models folder, by id. */
  importModel?: (run: string, policy: RunPolicy) => Promise<{ id: string; file: string }>;
  nodeId?: string;
}

const OPEN_STATES = ["pending", "claimed", "running", "retry-wait", "failed"];
/** How long one explanation of the runs serves further reads. */
const EXPLAIN_REUSE_MS = 100;

export class RunDriver {
  private ticking = false;
  /** The error the last tick failed with, while ticks keep failing. */
  private failing: string | null = null;
  /** The open items of every run, as the last plan read them. */
  private open = new Map<string, OpenItem[]>();
  private explained: { at: number; why: RunWhy[] } | null = null;

  constructor(private readonly opts: RunDriverOptions) {}

  /** The plan as it stands: the steps the leader would propose and why each run waits. */
  plan(now = this.opts.now?.() ?? Date.now()) {
    const input = this.input(now);
    const runs = planRuns(input);
    const evaluations: EvaluationView[] = runningEvaluations(this.opts.db).flatMap((row) => {
      const policy = this.opts.runs[row.run];
      const open = (this.open.get(row.run) ?? []).filter((i) => i.config.eval === row.id);
      return policy ? [{ row, policy, open }] : [];
    });
    return { steps: [...runs.steps, ...planEvaluations(evaluations, input)], why: runs.why };
  }

  /**
   * Why each run waits, for readers (the API, the CLI, the dashboard): the plan's explanation, shared by the reads
   * of one moment (a page asks for the list and the run) instead of planned again for each.
   */
  explain(now = this.opts.now?.() ?? Date.now()): RunWhy[] {
    if (this.explained && now - this.explained.at < EXPLAIN_REUSE_MS) return this.explained.why;
    const why = this.plan(now).why;
    this.explained = { at: now, why };
    return why;
  }

  async tick(): Promise<void> {
    if (this.ticking || !this.opts.isLeader() || Object.keys(this.opts.runs).length === 0) return;
    this.ticking = true;
    try {
      await this.importBootstrapModels();
      const { steps } = this.plan();
      for (const step of steps) {
        if (!this.opts.isLeader()) return;
        await this.propose(step);
      }
      if (this.failing) this.opts.log.info("run tick works again", { after: this.failing });
      this.failing = null;
    } catch (e) {
      // A lasting failure (a bootstrap model file that is missing, say) is warned about once, not every tick.
      const error = (e as Error).message;
      if (error !== this.failing) this.opts.log.warn("run tick failed", { error });
      this.failing = error;
    } finally {
      this.ticking = false;
    }
  }

  /** Runs that start from a model file: the leader registers it as generation 0 and makes it the best. */
  private async importBootstrapModels(): Promise<void> {
    for (const row of listRuns(this.opts.db)) {
      const policy = this.opts.runs[row.name];
      if (row.stage !== "bootstrapping" || !policy || !("model" in policy.bootstrap) || !this.opts.importModel)
        continue;
      const { id, file } = await this.opts.importModel(row.name, policy);
      const now = this.opts.now?.() ?? Date.now();
      const cause = `generation 0 from ${policy.bootstrap.model}`;
      const event = { type: "best-set", model: { id, generation: 0 }, at: now, cause };
      const register = { id, generation: 0, file, node: this.opts.nodeId ?? "" };
      await this.opts.propose({ name: "run.step", payload: { run: row.name, event, cause, register, now } });
    }
  }

  private async propose(step: PlannedStep): Promise<void> {
    if (step.command === "run.step" && step.payload.event?.type === "decided") {
      // The Elo table at the decision goes with its evidence: the run's history is then its Elo history.
      const evidence = step.payload.event.evidence as Record<string, unknown>;
      const best = listRuns(this.opts.db).find((r) => r.name === step.payload.run)?.context.best?.id ?? null;
      try {
        evidence.ratings = eloSnapshot(this.opts.db, step.payload.run, best);
      } catch (e) {
        // A fit that fails must not hold the decision back: it goes without the snapshot.
        this.opts.log.warn("Elo snapshot failed", { run: step.payload.run, error: (e as Error).message });
      }
    }
    const { result } = await this.opts.propose({ name: step.command, payload: step.payload });
    const taken = (result as { taken?: boolean } | undefined)?.taken;
    if (step.command === "eval.step" && step.payload.end)
      this.opts.log.info("evaluation ended", { id: step.payload.id, cause: step.payload.cause });
    if (step.command === "run.step" && step.payload.event) {
      const fields = { run: step.payload.run, event: step.payload.event.type, cause: step.payload.cause };
      if (taken) this.opts.log.info("run step", fields);
      else this.opts.log.debug("run step not taken", { ...fields, result });
    }
  }

  private input(now: number): PlanInput {
    const { db } = this.opts;
    const rows = new Map(listRuns(db).map((r) => [r.name, r] as const));
    const open = openRunItems(db, Object.keys(this.opts.runs));
    this.open = open;
    const runs: RunView[] = [];
    const missing: { name: string; policy: RunPolicy }[] = [];
    for (const [name, policy] of Object.entries(this.opts.runs)) {
      const row = rows.get(name);
      if (!row) {
        missing.push({ name, policy });
        continue;
      }
      const tally = new Map<string, number>();
      for (const r of matchResultsOf(db, name)) tally.set(`${r.a} ${r.b}`, r.wins + r.draws + r.losses);
      runs.push({
        row,
        policy,
        open: open.get(name) ?? [],
        bootstrap: bootstrapState(db, name),
        gateGaveUp: gateGaveUp(db, row.context.candidate?.id ?? null),
        baselineGames: (model, baseline) => tally.get(`${model} ${baseline}`) ?? 0,
      });
    }
    return {
      runs,
      missing,
      slots: (type) => slotsFor(type, this.opts.nodes(), this.opts.jobs),
      gpuNodes: (type) =>
        this.opts.nodes().filter((n) => n.alive && n.info?.capabilities.includes(type) && n.info.gpus.length > 0)
          .length,
      room: Math.max(0, this.opts.softLimit - this.opts.queued()),
      now,
      newId: () => randomUUID().slice(0, 8),
      seed: () => randomInt(0, 2 ** 31 - 1),
      defaults: (type) => ({ timeoutMs: this.opts.jobs[type]?.timeout ?? 3_600_000, maxAttempts: 3 }),
    };
  }
}

/** Job slots of live nodes that run `type` and are not drained: each node's slots over the template's. */
export function slotsFor(
  type: string,
  nodes: readonly NodeView[],
  jobs: Readonly<Record<string, JobTemplate>>,
): number {
  const template = jobs[type];
  if (!template) return 0;
  let slots = 0;
  const seen = new Set<string>();
  for (const n of nodes) {
    if (!n.alive || !n.info || n.info.draining !== undefined || seen.has(n.id)) continue;
    if (!n.info.capabilities.includes(type)) continue;
    seen.add(n.id);
    slots += Math.floor(n.info.slots / Math.max(1, template.slots));
  }
  return slots;
}

/**
 * Unfinished items of the runs. A run's items are named `<run>.<...>`, so each run's are read as a range of the
 * primary key (not by looking inside every item's config: the queue may hold many thousands of other items).
 */
function openRunItems(db: Db, names: readonly string[]): Map<string, OpenItem[]> {
  const query = db.$client.prepare(
    // "+state": the state is filtered, not looked up by index, so SQLite walks the id range (not every open item).
    `SELECT id, state, config FROM work_items WHERE id >= ? AND id < ? AND +state IN (${OPEN_STATES.map(() => "?").join(", ")})`,
  );
  const byRun = new Map<string, OpenItem[]>();
  for (const name of names) {
    const rows = query.all(...idRange(`${name}.`), ...OPEN_STATES) as { id: string; state: string; config: string }[];
    const list: OpenItem[] = [];
    for (const row of rows) {
      const config = JSON.parse(row.config) as Record<string, unknown>;
      const run = runItemOf(config);
      if (run?.run === name) list.push({ id: row.id, state: row.state, config: { ...config, ...run } });
    }
    if (list.length > 0) byRun.set(name, list);
  }
  return byRun;
}

/** The ids that start with `prefix`, as a range an index can walk: [prefix, prefix with its last char + 1). */
function idRange(prefix: string): [string, string] {
  const last = prefix.charCodeAt(prefix.length - 1);
  return [prefix, prefix.slice(0, -1) + String.fromCharCode(last + 1)];
}

/** Gate items of the candidate that gave up for good. */
function gateGaveUp(db: Db, candidate: string | null): RunView["gateGaveUp"] {
  if (candidate === null) return { items: 0, lastError: null };
  const rows = db.$client
    .prepare(
      `SELECT json_extract(context, '$.error') AS error FROM work_items WHERE state = 'dead-lettered'
         AND json_extract(config, '$.candidate') = ? AND json_extract(config, '$.gate') = 1 ORDER BY seq`,
    )
    .all(candidate) as { error: string | null }[];
  return { items: rows.length, lastError: rows.at(-1)?.error ?? null };
}

/** The run's bootstrap items (`<run>.bootstrap.<n>`): whether one is open, and how many failed for good. */
function bootstrapState(db: Db, run: string): RunView["bootstrap"] {
  const rows = db.$client
    .prepare(
      "SELECT state, json_extract(context, '$.error') AS error FROM work_items WHERE id >= ? AND id < ? ORDER BY seq",
    )
    .all(...idRange(`${run}.bootstrap.`)) as { state: string; error: string | null }[];
  const failed = rows.filter((r) => r.state === "dead-lettered" || r.state === "cancelled");
  return {
    open: rows.some((r) => r.state !== "dead-lettered" && r.state !== "cancelled"),
    failures: failed.length,
    lastError: failed.at(-1)?.error ?? null,
  };
}
