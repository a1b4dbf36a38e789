import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { type Db, openDb } from "../../src/db/client.ts";
import { TraceStore } from "../../src/db/traces.ts";
import { createLogger } from "../../src/observability/log.ts";
import { runConfigure, runStep } from "../../src/runs/commands.ts";
import { RunDriver } from "../../src/runs/driver.ts";
import { eloSnapshot } from "../../src/runs/elo-table.ts";
import { evalCreate, evalStep } from "../../src/runs/evaluation-commands.ts";
import { planEvaluations } from "../../src/runs/evaluation-plan.ts";
import {
  abtestParamsSchema,
  readEvaluation,
  runningEvaluations,
  tournamentParamsSchema,
} from "../../src/runs/evaluation-state.ts";
import { GATE_GIVE_UPS, type PlanInput, planRuns, type RunView } from "../../src/runs/plan.ts";
import { runPolicySchema } from "../../src/runs/policy.ts";
import { modelsRetired, modelsToArchive } from "../../src/runs/retention.ts";
import { retiredFiles } from "../../src/runs/retired-files.ts";
import { RunService } from "../../src/runs/service.ts";
import { importModel } from "../../src/runs/stage-io.ts";
import { modelsOf, readRun, runHistoryOf } from "../../src/runs/state.ts";
import { type Claim, readItem, workClaim, workReport } from "../../src/work/commands.ts";

/** A run's replicated commands applied as the state machine applies them, and the leader's plan over their state. */

let dir: string;
let db: Db;
let index = 0;
const ctx = () => ({ index: ++index, term: 2 });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "p2p-runs-"));
  db = openDb(dir);
  index = 0;
  policy = gatedPolicy;
});
afterEach(() => {
  db.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

const gatedPolicy = v.parse(runPolicySchema, {
  bootstrap: { command: "bootstrap" },
  train_after_games: 10,
  gate: { elo0: 0, elo1: 50, max_games: 100, pairs_per_item: 4 },
});
let policy = gatedPolicy;
const sha = (c: string) => c.repeat(64);
const GEN0 = sha("a");
const GEN1 = sha("b");

let seq = 0;
function planInput(now: number): PlanInput {
  const row = readRun(db, "c4");
  const open = db.$client
    .prepare("SELECT id, state, config FROM work_items WHERE state NOT IN ('completed', 'cancelled', 'dead-lettered')")
    .all() as { id: string; state: string; config: string }[];
  const runs: RunView[] = row
    ? [
        {
          row,
          policy,
          open: open.map((o) => ({ ...o, config: JSON.parse(o.config) })),
          bootstrap: { open: readItem(db, "c4.bootstrap.0") !== undefined, failures: 0, lastError: null },
          baselineGames: () => 0,
          gateGaveUp: { items: 0, lastError: null },
        },
      ]
    : [];
  return {
    runs,
    missing: row ? [] : [{ name: "c4", policy }],
    slots: () => 2,
    room: 100,
    now,
    newId: () => String(++seq),
    seed: () => 7,
    defaults: () => ({ timeoutMs: 60_000, maxAttempts: 2 }),
  };
}

/** Applies what the leader would propose now. */
function leaderTick(now = 10_000): void {
  for (const step of planRuns(planInput(now)).steps) {
    if (step.command === "run.configure") runConfigure.apply(db, step.payload, ctx());
    else runStep.apply(db, v.parse(runStep.payload, step.payload), ctx());
  }
}

/** A worker claims up to `max` runnable items of `type` and reports each complete (`times` times) with `result`. */
function finish(type: string, result: () => unknown, times = 1, max = 100): string[] {
  const offer = {
    node: "w1",
    types: [type],
    capabilities: [type],
    freeSlots: 100,
    gpus: 0,
    freeGpuMemoryGb: 0,
    freeDiskGb: 100,
    slotsPerType: {},
  };
  const claims = workClaim.apply(db, { offer, max, now: 2_000, leaseMs: 60_000 }, ctx()) as Claim[];
  for (const c of claims) {
    for (let i = 0; i < times; i++) {
      const report = { id: c.id, leaseId: c.leaseId, node: "w1", kind: "complete" as const, now: 3_000 };
      workReport.apply(db, { ...report, leaseMs: 60_000, result: result() }, ctx());
    }
  }
  return claims.map((c) => c.id);
}

const modelResult = (id: string) => () => ({ model: "m.model", modelId: id, modelFile: `c4/x-${id}.model` });

/** The run configured and generation 0 made: the run collects games. */
function toCollecting(): void {
  leaderTick();
  leaderTick();
  finish("bootstrap", modelResult(GEN0));
}

/** Bootstrap, one round of self-play, generation 1 trained: the run gates GEN1 against GEN0. */
function toGating(): void {
  toCollecting();
  leaderTick();
  finish("selfplay", () => ({ games: 5, positions: 60 }));
  leaderTick(20_000);
  finish("train", modelResult(GEN1));
}

describe("a run over the replicated commands", () => {
  test("bootstrap: the leader queues generation 0 once; its completion makes the best", () => {
    leaderTick();
    expect(readRun(db, "c4")?.stage).toBe("bootstrapping");
    leaderTick();
    leaderTick();
    expect(db.$client.prepare("SELECT count(*) AS n FROM work_items").get()).toEqual({ n: 1 });
    finish("bootstrap", modelResult(GEN0));
    const run = readRun(db, "c4");
    expect(run?.stage).toBe("collecting");
    expect(run?.context.best).toEqual({ id: GEN0, generation: 0 });
    expect(modelsOf(db, "c4")).toMatchObject([{ id: GEN0, generation: 0, state: "promoted", node: "w1" }]);
    // The run's trace is its replicated history: `trace --machine run --instance c4` reads it.
    const trace = new TraceStore(db).query({ machine: "run", instance: "c4" });
    expect(trace.map((t) => [t.from, t.to, t.event, t.cause])).toEqual([
      [null, "bootstrapping", "configure", "created from [runs.c4] of the cluster file"],
      ["bootstrapping", "collecting", "best-set", "generation 0 written by c4.bootstrap.0 on w1"],
    ]);
  });

  test("a bootstrap that gave up is replaced by the next, saying why; while one is open nothing is added", () => {
    leaderTick();
    const input = planInput(5_000);
    const view = input.runs[0] as RunView;
    const failed = planRuns({
      ...input,
      runs: [{ ...view, bootstrap: { open: false, failures: 2, lastError: "exit code 1" } }],
    });
    const step = failed.steps.find((s) => s.command === "run.step");
    expect(step?.command === "run.step" && step.payload.add.map((i) => i.id)).toEqual(["c4.bootstrap.2"]);
    expect(failed.why[0]?.why).toBe("bootstrap again (2 gave up; last: exit code 1)");
    const waiting = planRuns({
      ...input,
      runs: [{ ...view, bootstrap: { open: true, failures: 2, lastError: null } }],
    });
    expect(waiting.steps).toEqual([]);
    expect(waiting.why[0]?.why).toBe("waiting for generation 0 (bootstrap attempt 3)");
  });

  test("games count once per completed self-play item, however often its completion is reported", () => {
    toCollecting();
    leaderTick();
    const ids = finish("selfplay", () => ({ games: 3, positions: 60 }), 3);
    expect(ids.length).toBeGreaterThan(0);
    expect(readRun(db, "c4")?.context.newGames).toBe(3 * ids.length);
  });

  test("one training per generation; a duplicated completion makes one candidate; a broken result changes nothing", () => {
    toCollecting();
    leaderTick();
    finish("selfplay", () => ({ games: 5, positions: 60 }));
    leaderTick(20_000);
    expect(readRun(db, "c4")?.stage).toBe("training");
    const trainItem = readRun(db, "c4")?.context.trainItem as string;
    expect(readItem(db, trainItem)?.config).toMatchObject({ stage: "train", generation: 1, model: GEN0 });
    // A second look by the leader adds no second training: the run no longer collects.
    leaderTick(20_001);
    expect(db.$client.prepare("SELECT count(*) AS n FROM work_items WHERE type = 'train'").get()).toEqual({ n: 1 });
    finish("train", modelResult(GEN1), 2);
    const run = readRun(db, "c4");
    expect(run?.stage).toBe("evaluating");
    expect(run?.context.candidate).toEqual({ id: GEN1, generation: 1 });
    expect(modelsOf(db, "c4").map((m) => [m.generation, m.state, m.parent])).toEqual([
      [0, "promoted", null],
      [1, "evaluating", GEN0],
    ]);
    // Gate items pit the candidate against the best; a result that breaks the contract counts nothing.
    leaderTick(30_000);
    finish("match", () => ({ wins: 3, draws: 0, losses: 0, pairs: [0, 0, 0, 0, 2] }));
    expect(readRun(db, "c4")?.context.pairs).toEqual([0, 0, 0, 0, 0]);
  });

  test("a training prefers a node with a GPU for a minute when a live trainer has one", () => {
    toCollecting();
    leaderTick();
    finish("selfplay", () => ({ games: 5, positions: 60 }));
    const steps = planRuns({ ...planInput(20_000), gpuNodes: () => 1 }).steps;
    const train = steps.flatMap((s) => (s.command === "run.step" ? s.payload.add : [])).find((i) => i.type === "train");
    expect(train?.requirements.preferGpuUntil).toBe(80_000);
    const cpuOnly = planRuns(planInput(20_000)).steps;
    const plain = cpuOnly
      .flatMap((s) => (s.command === "run.step" ? s.payload.add : []))
      .find((i) => i.type === "train");
    expect(plain?.requirements.preferGpuUntil).toBeUndefined();
  });

  test("the SPRT decides, outstanding gate items are cancelled, and a late decision changes nothing", () => {
    toGating();
    // One gate item finishes at a time while the plan keeps two queued; perfect pairs, until the test decides.
    const perfect = () => ({ wins: 8, draws: 0, losses: 0, pairs: [0, 0, 0, 0, 4] });
    let rounds = 0;
    for (let now = 30_000; readRun(db, "c4")?.stage === "evaluating" && rounds < 20; now += 1_000, rounds++) {
      leaderTick(now);
      finish("match", perfect, 1, 1);
    }
    // Perfect pairs move fishtest's LLR about 0.134 each toward elo1 = 50: 2.94 takes 22 pairs, so six items
    // finish and the seventh look decides.
    expect(rounds).toBe(7);
    const states = db.$client
      .prepare("SELECT state, count(*) AS n FROM work_items WHERE type = 'match' GROUP BY state ORDER BY state")
      .all();
    expect(states).toEqual([
      { state: "cancelled", n: 1 },
      { state: "completed", n: 6 },
    ]);
    const run = readRun(db, "c4");
    expect(run?.stage).toBe("collecting");
    expect(run?.context.best).toEqual({ id: GEN1, generation: 1 });
    expect(run?.context.lastDecision).toMatchObject({ verdict: "promoted", evidence: { games: 48 } });
    expect(modelsOf(db, "c4").find((m) => m.id === GEN1)?.state).toBe("promoted");
    const decided = runHistoryOf(db, "c4", 100).find((h) => h.event === "decided");
    expect(decided?.cause).toContain("reached 2.94");
    // What the leader keeps with a decision for the Elo history: every promoted generation's rating and interval.
    const snapshot = eloSnapshot(db, "c4", GEN1);
    expect(snapshot.g0).toEqual([0, 0, 0]);
    expect(snapshot.g1?.[0]).toBeGreaterThan(0);
    expect(Object.values(snapshot).flat().every(Number.isFinite)).toBe(true);
    const late = runStep.apply(
      db,
      v.parse(runStep.payload, {
        run: "c4",
        event: { type: "decided", candidate: GEN1, verdict: "rejected", evidence: {}, at: 40_000 },
        cause: "late",
        now: 40_000,
      }),
      ctx(),
    );
    expect(late).toMatchObject({ taken: false });
    expect(readRun(db, "c4")?.context.best?.id).toBe(GEN1);
    expect(modelsOf(db, "c4").find((m) => m.id === GEN1)?.state).toBe("promoted");
  });

  test("a candidate whose gate items keep giving up is rejected as one that cannot be evaluated; the run moves on", () => {
    toGating();
    const view = () => planInput(30_000).runs[0] as RunView;
    const lost = { items: GATE_GIVE_UPS, lastError: "model bbbb did not reach this node within 300 s" };
    expect(
      planRuns({ ...planInput(30_000), runs: [{ ...view(), gateGaveUp: { ...lost, items: 2 } }] }).why[0]?.why,
    ).toContain("gating generation 1");
    leaderTick(30_000);
    const plan = planRuns({ ...planInput(31_000), runs: [{ ...view(), gateGaveUp: lost }] });
    expect(plan.why[0]?.why).toBe(
      "cannot be evaluated: 3 gate items gave up (last: model bbbb did not reach this node within 300 s): rejected",
    );
    for (const step of plan.steps) runStep.apply(db, v.parse(runStep.payload, step.payload), ctx());
    const run = readRun(db, "c4");
    expect(run?.stage).toBe("collecting");
    expect(run?.context.best?.id).toBe(GEN0);
    expect(run?.context.lastDecision).toMatchObject({ verdict: "rejected", evidence: { gaveUp: 3 } });
    expect(modelsOf(db, "c4").find((m) => m.id === GEN1)?.state).toBe("rejected");
    const open = db.$client.prepare("SELECT count(*) AS n FROM work_items WHERE type = 'match' AND state = 'pending'");
    expect(open.get()).toEqual({ n: 0 });
  });

  test("while a candidate is gated, the run says which match nodes it is still syncing to", () => {
    toGating();
    const propose = async () => ({ result: undefined });
    const log = createLogger("error");
    const driver = new RunDriver({
      db,
      runs: { c4: policy },
      jobs: {},
      nodes: () => [],
      softLimit: 100,
      queued: () => 0,
      isLeader: () => false,
      propose,
      log,
    });
    const service = new RunService({
      db,
      driver,
      propose,
      holders: (id) => (id === GEN1 ? ["n1"] : ["n1", "n2", "n3"]),
      runners: () => ["n1", "n2", "n3"],
    });
    expect(service.get("c4").why).toEndWith("; candidate syncing to n2, n3");
    expect(service.models("c4").map((m) => m.holders)).toEqual([["n1", "n2", "n3"], ["n1"]]);
  });

  test("an operator's best-set must name a model of the run", () => {
    toCollecting();
    const foreign = runStep.apply(
      db,
      v.parse(runStep.payload, {
        run: "c4",
        event: { type: "best-set", model: { id: sha("f"), generation: 3 }, at: 1, cause: "x" },
        cause: "operator",
        now: 5_000,
      }),
      ctx(),
    );
    expect(foreign).toMatchObject({ taken: false });
    expect(readRun(db, "c4")?.context.best?.id).toBe(GEN0);
  });

  test("generation 0 from a file: registered and made the best once, while the run bootstraps", async () => {
    leaderTick();
    const source = join(dir, "gen0.model");
    await Bun.write(source, "weights");
    const folders = { games: join(dir, "games", "c4"), models: join(dir, "models", "c4") };
    const hash = async (path: string) =>
      new Bun.CryptoHasher("sha256").update(await Bun.file(path).bytes()).digest("hex");
    const imported = await importModel(source, "c4", folders, hash);
    expect(imported.file).toBe(`c4/0000-${imported.id}.model`);
    expect(await Bun.file(join(dir, "models", imported.file)).text()).toBe("weights");
    const step = (now: number) =>
      runStep.apply(
        db,
        v.parse(runStep.payload, {
          run: "c4",
          event: { type: "best-set", model: { id: imported.id, generation: 0 }, at: now, cause: "file" },
          register: { id: imported.id, generation: 0, file: imported.file, node: "n1" },
          cause: "generation 0 from gen0.model",
          now,
        }),
        ctx(),
      );
    expect(step(1_000)).toMatchObject({ taken: true, stage: "collecting" });
    expect(step(2_000)).toMatchObject({ taken: false });
    expect(modelsOf(db, "c4")).toMatchObject([{ id: imported.id, generation: 0, state: "promoted", node: "n1" }]);
  });
});

describe("retention over the replicated commands", () => {
  test("old game epochs and old models are retired alike for every node; the best stays; an archived model cannot return", () => {
    policy = v.parse(runPolicySchema, {
      bootstrap: { command: "bootstrap" },
      train_after_games: 10,
      selfplay_games: 60,
      gate: "none",
      keep_games: 100,
      window_games: 100,
      keep_models: 2,
    });
    toCollecting();
    const generations = [sha("c"), sha("d"), sha("e"), sha("f")];
    generations.forEach((id, i) => {
      leaderTick(20_000 * (i + 1));
      const selfplay = finish("selfplay", () => ({ games: 60, positions: 600 }));
      expect(readItem(db, selfplay[0] as string)?.config).toMatchObject({ epoch: i });
      leaderTick(20_000 * (i + 1) + 1);
      finish("train", modelResult(id));
    });
    const run = readRun(db, "c4");
    expect(run?.context.best).toEqual({ id: sha("f"), generation: 4 });
    // Two self-play items of 60 games per epoch: the newest epoch alone holds the 100 games to keep.
    expect(run?.context.games?.retiredBelow).toBe(3);
    expect(Object.keys(run?.context.games?.byEpoch ?? {})).toEqual(["3"]);
    // The newest two generations stay; older ones are archived, whatever they were.
    expect(modelsOf(db, "c4").map((m) => [m.generation, m.state])).toEqual([
      [0, "archived"],
      [1, "archived"],
      [2, "archived"],
      [3, "promoted"],
      [4, "promoted"],
    ]);
    expect(retiredFiles(db, "games")).toEqual([{ under: "c4", below: 3, except: [] }]);
    expect(retiredFiles(db, "models")).toEqual([{ under: "c4", below: 3, except: [] }]);
    const backToGen1 = { type: "best-set" as const, model: { id: sha("c"), generation: 1 }, at: 1, cause: "operator" };
    const refused = runStep.apply(
      db,
      { run: "c4", cause: "operator", add: [], cancel: [], now: 1, event: backToGen1 },
      ctx(),
    );
    expect(refused).toMatchObject({ taken: false, reason: expect.stringContaining("archived") });
  });

  test("a pinned model below the cutoff is excepted from its run's rule until it is archived", () => {
    const models = [
      { id: sha("a"), generation: 0, state: "promoted" },
      { id: sha("b"), generation: 1, state: "rejected" },
      { id: sha("c"), generation: 2, state: "rejected" },
      { id: sha("d"), generation: 3, state: "evaluating" },
    ];
    expect(modelsToArchive(models, 2, new Set([sha("a")]))).toEqual([sha("b")]);
    expect(modelsRetired("c4", models, 2)).toEqual({ under: "c4", below: 2, except: [sha("a"), sha("b")] });
    expect(modelsRetired("c4", models, 10)).toBeNull();
  });
});

describe("A/B tests and tournaments over the replicated commands", () => {
  /** The leader's look at the running evaluations, applied. */
  function evaluationTick(now: number): void {
    const open = db.$client
      .prepare("SELECT id, state, config FROM work_items WHERE state IN ('pending', 'claimed', 'running')")
      .all() as { id: string; state: string; config: string }[];
    const views = runningEvaluations(db).map((row) => ({
      row,
      policy,
      open: open.map((o) => ({ ...o, config: JSON.parse(o.config) })).filter((o) => o.config.eval === row.id),
    }));
    for (const step of planEvaluations(views, planInput(now)))
      evalStep.apply(db, v.parse(evalStep.payload, step.payload), ctx());
  }
  const create = (id: string, kind: "abtest" | "tournament", players: string[], params: unknown) =>
    evalCreate.apply(
      db,
      v.parse(evalCreate.payload, { id, run: "c4", kind, players, params, cause: "test", now: 1 }),
      ctx(),
    );

  test("an A/B test stops when its sequential test decides, its results kept apart from the gate's", () => {
    toGating();
    create("ab1", "abtest", [GEN1, GEN0], v.parse(abtestParamsSchema, { elo1: 50, max_games: 200, pairs_per_item: 4 }));
    expect(create("ab1", "abtest", [GEN0, GEN1], {})).toEqual({ created: false });
    let rounds = 0;
    for (let now = 50_000; readEvaluation(db, "ab1")?.state === "running" && rounds < 30; now += 1_000, rounds++) {
      evaluationTick(now);
      finish("match", () => ({ wins: 8, draws: 0, losses: 0, pairs: [0, 0, 0, 0, 4] }), 2, 1);
    }
    const ab = readEvaluation(db, "ab1");
    expect(ab?.state).toBe("done");
    expect(ab?.outcome).toMatchObject({ verdict: "a is stronger", games: 48 });
    expect(readRun(db, "c4")?.context.pairs).toEqual([0, 0, 0, 0, 0]);
    expect(db.$client.prepare("SELECT wins FROM match_results WHERE a = ? AND b = ?").get(GEN1, GEN0)).toEqual({
      wins: 48,
    });
  });

  test("a tournament plays every pairing its games, a baseline always second, and ends with standings", () => {
    toGating();
    create(
      "t1",
      "tournament",
      ["random", GEN0, GEN1],
      v.parse(tournamentParamsSchema, { games_per_pair: 8, pairs_per_item: 2 }),
    );
    for (let now = 50_000, i = 0; readEvaluation(db, "t1")?.state === "running" && i < 30; now += 1_000, i++) {
      evaluationTick(now);
      finish("match", () => ({ wins: 3, draws: 1, losses: 0, pairs: [0, 0, 0, 1, 1] }));
    }
    const t = readEvaluation(db, "t1");
    expect(t?.state).toBe("done");
    expect(Object.keys(t?.results.games ?? {}).sort()).toEqual(
      [`${GEN0} random`, `${GEN1} random`, `${GEN0} ${GEN1}`].sort(),
    );
    for (const g of Object.values(t?.results.games ?? {})) expect(g).toEqual({ wins: 6, draws: 2, losses: 0 });
    // Each pairing's first player took 6 of its 8 games: GEN0 beat GEN1 and both beat random.
    const outcome = t?.outcome as { standings: { player: string }[] } | undefined;
    expect(outcome?.standings.map((s) => s.player)).toEqual([GEN0, GEN1, "random"]);
  });
});
