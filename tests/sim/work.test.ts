import { describe, expect, test } from "bun:test";
import { workHistory, workItems } from "../../src/db/schema.ts";
import type { NodeInfo } from "../../src/shared/node-info.ts";
import { decideClaim } from "../../src/work/claim-decision.ts";
import { type Claim, type ReportOutcome, WORK_COMMANDS } from "../../src/work/commands.ts";
import type { Offer } from "../../src/work/model.ts";
import { type AwaitedEntry, Courier } from "./courier.ts";
import { RaftSim } from "./raft-sim.ts";
import { injectWorkerFault, reviveWorkers } from "./worker-faults.ts";

const SEEDS = Number(process.env.WORK_SEEDS ?? 60);
const ONLY = process.env.WORK_SEED ? Number(process.env.WORK_SEED) : undefined;
const ITEMS = 20;
const LEASE_MS = 2_000;
const GIB = 1024 ** 3;
const SAMPLE: NodeInfo = {
  version: "sim",
  capabilities: ["selfplay"],
  slots: 2,
  voter: false,
  nat: false,
  cpu: { count: 8, load1: 1 },
  memory: { totalBytes: 64 * GIB, freeBytes: 32 * GIB },
  disk: { totalBytes: 1000 * GIB, freeBytes: 100 * GIB },
  gpus: [],
  sampledAt: 0,
};

interface SimWorker {
  id: string;
  up: boolean;
  /** Until then the worker is stalled (it neither claims nor reports). */
  stalledUntil: number;
  holds: Map<string, { leaseId: string; doneAt: number }>;
  /** Proposals this worker awaits (see courier.ts). */
  waiting: AwaitedEntry[];
}

/**
 * The work queue over the Raft simulator: leader failover in the middle of claims and completions,
 * workers that crash or stall past their lease and then report anyway, lost and duplicated reports.
 * Claims and reports travel one per entry or grouped several to an entry, as the leader groups them.
 * Every item must end completed (or dead-lettered), none may complete twice, and every voter's queue
 * must be identical.
 */
function workChaos(seed: number): void {
  const sim = new RaftSim({
    seed,
    voters: 3,
    commands: WORK_COMMANDS,
  });
  const r = sim.random;
  const workers: SimWorker[] = ["w1", "w2", "w3"].map((id) => ({
    id,
    up: true,
    stalledUntil: 0,
    holds: new Map(),
    waiting: [],
  }));
  /** Each worker's real claim decision, on a machine with room to spare: two slots of one type. */
  const decide = (w: SimWorker) =>
    decideClaim({
      nodeId: w.id,
      capabilities: ["selfplay"],
      jobs: { selfplay: { command: ["true"], timeout: 60_000, slots: 1, requires: {}, env: {} } },
      slots: 2,
      busySlots: w.holds.size,
      resources: SAMPLE,
      leader: sim.leader()?.id ?? null,
    });

  const propose = (name: string, payload: unknown) => sim.proposeCommand(name, payload);

  const items = Array.from({ length: ITEMS }, (_, i) => ({
    id: `item-${i}`,
    type: "selfplay",
    priority: 50,
    config: {},
    requirements: { capabilities: [], gpu: false, gpuMemoryGb: 0, diskGb: 0, excludeNodes: [] },
    dependsOn: [],
    maxAttempts: 20,
    // Some time out (plus the ticks' grace) before a lease would run out: the leader's backstop ends those attempts.
    timeoutMs: i % 4 === 0 ? 600 : 60_000,
  }));
  sim.run(2_000);
  let submitted: { index: number; key: string } | null = null;
  while (!submitted || sim.committed.get(submitted.index) !== submitted.key) {
    if (sim.now > 30_000) throw sim.fail("could not submit the items");
    submitted = propose("work.add", { items, now: sim.now });
    sim.run(200);
  }

  const workerStep = (w: SimWorker) => {
    if (!w.up || sim.now < w.stalledUntil) return;
    for (const wait of w.waiting.splice(0)) {
      const entry = sim.committed.get(wait.index);
      if (entry === undefined && sim.now < wait.deadline) {
        w.waiting.push(wait);
        continue;
      }
      if (entry !== wait.key) continue; // lost with a deposed leader: a claim is simply retried later
      const all = sim.results.get(wait.index);
      const result = wait.pos === undefined ? all : (all as unknown[])[wait.pos];
      if (wait.kind === "claim") {
        for (const c of result as Claim[]) w.holds.set(c.id, { leaseId: c.leaseId, doneAt: sim.now + r() * 1_000 });
      } else if (wait.item) {
        const outcome = result as ReportOutcome;
        // Acknowledged (or refused for good): the report is settled either way.
        if (outcome.ok || outcome.status === 409 || outcome.status === 404) w.holds.delete(wait.item);
      }
    }
    if (w.waiting.length > 0) return;
    if (w.holds.size === 0) {
      claim(w);
      return;
    }
    for (const [item, hold] of w.holds) {
      if (sim.now < hold.doneAt) continue;
      if (r() < 0.2) continue; // this report is lost: the worker will send it again
      const kind = r() < 0.15 ? "fail" : "complete";
      const body = {
        id: item,
        leaseId: hold.leaseId,
        node: w.id,
        kind,
        result: { by: w.id },
        error: "simulated failure",
        retryAt: sim.now + r() * 500,
      };
      const copies = r() < 0.2 ? 2 : 1; // and sometimes duplicated
      for (let i = 0; i < copies; i++) report(w, body);
    }
  };

  /**
   * Claims and reports go out one entry each, or, as the leader groups what reaches it in one turn, gathered
   * into one entry per kind at the end of the step (with the copies of a duplicated report).
   */
  const courier = new Courier<SimWorker, Offer>(sim, LEASE_MS);
  const claim = (w: SimWorker) => {
    const d = decide(w);
    if (d.claim) courier.claim(w, { offer: d.offer, max: d.max });
  };
  const report = (w: SimWorker, body: { id: string } & Record<string, unknown>) => courier.report(w, body);

  const steps = (until: number, faults: boolean) => {
    let nextTick = sim.now;
    while (sim.now < until) {
      if (faults) {
        const roll = r();
        if (roll < 0.02) {
          const v = sim.voters[Math.floor(r() * sim.voters.length)];
          if (v?.up && sim.voters.filter((x) => !x.up).length === 0) sim.crash(v.id);
        } else if (roll < 0.05) {
          for (const v of sim.voters) if (!v.up) sim.restart(v.id);
        } else if (roll < 0.07) {
          injectWorkerFault("stall", workers, r, sim.now, LEASE_MS);
        } else if (roll < 0.08) {
          injectWorkerFault("crash", workers, r, sim.now, LEASE_MS); // its leases must expire
        } else if (roll < 0.1) {
          reviveWorkers(workers);
        } else if (roll < 0.12) {
          sim.lossRate = r() * 0.2;
        } else if (roll < 0.14) {
          sim.heal();
        }
      }
      if (sim.now >= nextTick) {
        // Bounded ticks with the timeout backstop, or the unbounded form older entries carry.
        propose(
          "work.tick",
          r() < 0.7 ? { now: sim.now, limit: 1 + Math.floor(r() * 4), graceMs: 500 } : { now: sim.now },
        );
        nextTick = sim.now + 500;
      }
      courier.grouped = r() < 0.5;
      for (const w of workers) workerStep(w);
      courier.flush();
      sim.run(50 + r() * 100);
    }
  };

  steps(20_000, true);
  sim.heal();
  for (const v of sim.voters) if (!v.up) sim.restart(v.id);
  for (const w of workers) {
    w.up = true;
    w.stalledUntil = 0;
  }
  const finalStates = new Set(["completed", "dead-lettered", "cancelled"]);
  const deadline = sim.now + 60_000;
  const unfinished = () => {
    const db = sim.leader()?.db;
    if (!db) return ITEMS;
    return db
      .select({ state: workItems.state })
      .from(workItems)
      .all()
      .filter((i) => !finalStates.has(i.state)).length;
  };
  while (unfinished() > 0) {
    if (sim.now > deadline) throw sim.fail(`${unfinished()} items never finished after the faults stopped`);
    steps(sim.now + 1_000, false);
  }
  // Every voter catches up (a snapshot for one that fell behind the compacted log) before they are compared.
  sim.awaitCatchUp();

  const views = sim.voters.map((v) => {
    const db = v.db;
    if (!db) throw new Error("no state machine");
    return JSON.stringify(db.select().from(workItems).orderBy(workItems.id).all());
  });
  if (new Set(views).size !== 1) {
    if (process.env.WORK_DEBUG) {
      const rows = views.map((v) => JSON.parse(v) as Array<Record<string, unknown>>);
      for (let i = 0; i < (rows[0]?.length ?? 0); i++) {
        const a = JSON.stringify(rows[0]?.[i]);
        for (let k = 1; k < rows.length; k++) {
          if (JSON.stringify(rows[k]?.[i]) !== a) console.log(`voter0 ${a}\nvoter${k} ${JSON.stringify(rows[k]?.[i])}`);
        }
      }
      console.log(sim.voters.map((v) => `${v.id} up=${v.up} applied=${v.applied} snap=${v.raft.snapshotIndex}`));
    }
    throw sim.fail("voters disagree about the work queue");
  }
  const history = sim.voters[0]?.db.select().from(workHistory).all() ?? [];
  const completions = new Map<string, number>();
  for (const h of history) if (h.to === "completed") completions.set(h.itemId, (completions.get(h.itemId) ?? 0) + 1);
  for (const [item, n] of completions) if (n > 1) throw sim.fail(`${item} completed ${n} times`);
  // No report on a stale lease is honoured: each completion names the lease of the item's latest claim.
  const leaseOf = (cause: string | null) => /\(lease ([^)]+)\)/.exec(cause ?? "")?.[1];
  const latestClaim = new Map<string, string | undefined>();
  for (const h of [...history].sort((a, b) => a.seq - b.seq)) {
    if (h.to === "claimed") latestClaim.set(h.itemId, leaseOf(h.cause));
    if (h.to === "completed" && leaseOf(h.cause) !== latestClaim.get(h.itemId)) {
      throw sim.fail(`${h.itemId} completed by lease ${leaseOf(h.cause)}, not its latest ${latestClaim.get(h.itemId)}`);
    }
  }
}

describe("the work queue under the Raft simulator, with workers", () => {
  test(`every item ends, none completes twice, all voters agree (${ONLY ?? SEEDS} seeds)`, () => {
    const seeds = ONLY !== undefined ? [ONLY] : Array.from({ length: SEEDS }, (_, i) => i + 1);
    for (const seed of seeds) {
      try {
        workChaos(seed);
      } catch (e) {
        throw new Error(`${(e as Error).message}\nreplay: WORK_SEED=${seed} bun test tests/sim/work.test.ts`);
      }
    }
    expect(seeds.length).toBeGreaterThan(0);
  }, 600_000);
});
