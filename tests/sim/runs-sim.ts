import * as v from "valibot";
import { jobTemplateSchema } from "../../src/config/schema.ts";
import type { Db } from "../../src/db/client.ts";
import type { RunContext } from "../../src/machines/run-loop.ts";
import { createLogger } from "../../src/observability/log.ts";
import { RunDriver } from "../../src/runs/driver.ts";
import { runPolicySchema } from "../../src/runs/policy.ts";
import type { NodeInfo } from "../../src/shared/node-info.ts";

/**
 * The pieces of the training-run simulation (tests/sim/runs.test.ts): the cluster's run and job templates, the
 * leader's real plan made repeatable, what a worker's stage prints, and the invariants every voter must keep
 * at every look.
 */

export const RUN = "c4";
export const TYPES = ["bootstrap", "selfplay", "train", "match"];

const JOBS = Object.fromEntries(
  TYPES.map((t) => [t, v.parse(jobTemplateSchema, { command: ["true"], timeout: "30s" })]),
);

const POLICY = v.parse(runPolicySchema, {
  bootstrap: { command: "bootstrap" },
  selfplay_games: 10,
  train_after_games: 30,
  gate: { elo0: 0, elo1: 50, alpha: 0.05, beta: 0.05, max_games: 48, pairs_per_item: 4 },
  baselines: ["random"],
  baseline_share: 0.2,
});

const hex64 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex");

/** A candidate is good (much stronger than the best) or not, by its id: some generations pass the gate, some fail. */
export const isGood = (model: string) => Number.parseInt(model.slice(0, 2), 16) < 150;

const log = createLogger("error", { node: "sim" });
const nodeInfo = { capabilities: TYPES, slots: 2, gpus: [] } as unknown as NodeInfo;

/**
 * The steps the leader's RunDriver plans over its own applied state, with the workers alive now as its nodes.
 * The plan draws item ids and seeds from the process's randomness: they are replaced by ones made from the sim's
 * seed and clock, so a seed replays the same run.
 */
export function plannedSteps(
  db: Db,
  alive: readonly string[],
  now: number,
  seed: number,
): Array<{ command: string; payload: unknown }> {
  const driver = new RunDriver({
    db,
    runs: { [RUN]: POLICY },
    jobs: JOBS,
    nodes: () => alive.map((id) => ({ id, alive: true, info: nodeInfo })),
    softLimit: 10_000,
    queued: () => 0,
    isLeader: () => true,
    propose: async () => ({ result: undefined }),
    log,
    now: () => now,
  });
  let seq = 0;
  return driver.plan(now).steps.map((step) => {
    const text = JSON.stringify(step.payload)
      .replace(/\.(selfplay|match|baseline)\.g(\d+)\.[0-9a-f]{8}/g, (_m, s, g) => `.${s}.g${g}.${seed}-${now}-${seq++}`)
      .replace(/"seed":\d+/g, () => `"seed":${seq++}`);
    return { command: step.command, payload: JSON.parse(text) };
  });
}

/**
 * What a stage's job prints, as the contract of src/runs/stage-item.ts asks: a model with its id (derived from the
 * seed and the item, so a retried training writes the same file), games, or a match's games in pairs drawn by
 * the candidate's strength (a baseline is always much weaker).
 */
export function stageResult(seed: number, id: string, config: Record<string, unknown>, random: () => number): unknown {
  switch (config.stage) {
    case "bootstrap":
    case "train": {
      const modelId = hex64(`${seed} ${id}`);
      return { model: "m.model", modelId, modelFile: `c4/${id}.model`, loss: { policy: 1, value: 0.5 } };
    }
    case "selfplay":
      return { games: 10, positions: 200 };
    default: {
      const pairs = [0, 0, 0, 0, 0];
      const good = config.opponent === "random" || isGood(String(config.candidate));
      for (let i = 0; i < Number(config.games) / 2; i++) {
        const x = random();
        const k = good ? (x < 0.7 ? 4 : x < 0.9 ? 3 : 2) : x < 0.3 ? 1 : x < 0.7 ? 2 : x < 0.85 ? 3 : 0;
        pairs[k] = (pairs[k] ?? 0) + 1;
      }
      const [c0, c1, c2, c3, c4] = pairs as [number, number, number, number, number];
      return { wins: c2 + c3 + 2 * c4, draws: c1 + c3, losses: 2 * c0 + c1 + c2, pairs };
    }
  }
}

interface HistoryRow {
  seq: number;
  event: string;
  detail: string | null;
}

/** What one voter has shown so far, to judge the next look against. */
interface VoterView {
  /** The last model state seen, by model. */
  states: Map<string, string>;
  /** The model that went to the gate (or was made the best) for each generation. */
  gated: Map<number, string>;
  /** The best as the run's history explains it, the match items it counted, and how far it was read. */
  best: string | null;
  counted: Set<string>;
  historySeq: number;
}

const FINAL = new Set(["promoted", "rejected"]);

/**
 * The run's safety, looked at on every voter after every step of the simulation: one gated candidate at a time,
 * one training per generation, decisions that never flip, and a best pointer that only a decision (or the
 * generation 0 / an operator's best-set) moves, as the history tells it.
 */
export class RunInvariants {
  private readonly views = new Map<string, VoterView>();

  constructor(private readonly fail: (message: string) => Error) {}

  look(voter: string, db: Db): void {
    let view = this.views.get(voter);
    if (!view) {
      view = { states: new Map(), gated: new Map(), best: null, counted: new Set(), historySeq: 0 };
      this.views.set(voter, view);
    }
    const at = (what: string) => this.fail(`${voter}: ${what}`);
    const sql = db.$client;
    const registry = sql.query("SELECT id, generation, state FROM models WHERE run = ?").all(RUN) as Array<{
      id: string;
      generation: number;
      state: string;
    }>;
    const evaluating = registry.filter((m) => m.state === "evaluating");
    if (evaluating.length > 1) throw at(`${evaluating.length} candidates gated at once`);
    for (const m of registry) {
      const was = view.states.get(m.id);
      if (was && was !== m.state && (FINAL.has(was) || (was === "evaluating" && m.state === "candidate")))
        throw at(`model ${m.id} (generation ${m.generation}) went from ${was} back to ${m.state}`);
      view.states.set(m.id, m.state);
      if (m.state === "evaluating" || FINAL.has(m.state)) {
        const other = view.gated.get(m.generation);
        if (other && other !== m.id) throw at(`generation ${m.generation} gated twice: ${other} and ${m.id}`);
        view.gated.set(m.generation, m.id);
      }
    }
    const trainedTwice = sql
      .query(
        `SELECT json_extract(config, '$.generation') AS generation, count(*) AS n FROM work_items
         WHERE state = 'completed' AND json_extract(config, '$.stage') = 'train'
         GROUP BY generation HAVING n > 1`,
      )
      .all() as Array<{ generation: number; n: number }>;
    for (const t of trainedTwice) throw at(`generation ${t.generation} trained ${t.n} times`);

    const rows = sql
      .query("SELECT seq, event, detail FROM run_history WHERE run = ? AND seq > ? ORDER BY seq")
      .all(RUN, view.historySeq) as HistoryRow[];
    for (const h of rows) {
      const detail = JSON.parse(h.detail ?? "null") as {
        model?: { id: string };
        candidate?: string;
        verdict?: string;
        item?: string;
      };
      if (h.event === "match-result" && view.counted.has(detail?.item ?? ""))
        throw at(`the games of ${detail?.item} counted twice for the gate`);
      if (h.event === "match-result") view.counted.add(detail?.item ?? "");
      if (h.event === "best-set") view.best = detail?.model?.id ?? view.best;
      if (h.event === "decided" && detail?.verdict === "promoted") view.best = detail.candidate ?? view.best;
      const state = view.states.get(detail?.candidate ?? "");
      if (h.event === "decided" && state !== detail?.verdict)
        throw at(`${detail?.candidate} was decided ${detail?.verdict} but is ${state}`);
      view.historySeq = h.seq;
    }
    const run = sql.query("SELECT context FROM runs WHERE name = ?").get(RUN) as { context: string } | null;
    const best = run ? ((JSON.parse(run.context) as RunContext).best?.id ?? null) : null;
    if (best !== view.best) throw at(`the best is ${best}, but the history moved it to ${view.best}`);
    if (best && view.states.get(best) !== "promoted") throw at(`the best ${best} is ${view.states.get(best)}`);
  }

  /** Each completed match item's games are in the Elo table's tally once: none lost, none added twice. */
  settled(voter: string, db: Db): void {
    const tally = (sql: string) =>
      JSON.stringify(
        db.$client
          .query(sql)
          .all(RUN)
          .map((row) => Object.values(row as object)),
      );
    const fromItems = tally(
      `SELECT json_extract(config, '$.candidate') AS a, json_extract(config, '$.opponent') AS b,
         sum(json_extract(context, '$.result.wins')), sum(json_extract(context, '$.result.draws')),
         sum(json_extract(context, '$.result.losses'))
       FROM work_items WHERE state = 'completed' AND json_extract(config, '$.run') = ?
         AND json_extract(config, '$.stage') = 'match'
       GROUP BY a, b ORDER BY a, b`,
    );
    const table = tally("SELECT a, b, wins, draws, losses FROM match_results WHERE run = ? ORDER BY a, b");
    if (fromItems !== table) throw this.fail(`${voter}: match results ${table}, completed matches ${fromItems}`);
  }
}
