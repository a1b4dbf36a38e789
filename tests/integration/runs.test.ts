import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { demoRunToml } from "./demo-run.ts";
import { BIN, requireBinary, TestCluster, waitFor } from "./harness.ts";

/**
 * A training run on the compiled binary with the demo workload: 3 voters that self-play and play matches, 2
 * workers that also train. The leader is killed (-9) while a generation trains and its successor while a
 * candidate is gated; the run still trains each generation once, decides, promotes and rates the models.
 */

interface RunView {
  stage: string;
  why: string;
  context: {
    best: { id: string; generation: number } | null;
    games?: { retiredBelow: number };
    lastGeneration: number;
    lastDecision: { verdict: string; generation: number; evidence: Record<string, unknown> } | null;
  };
  history: Array<{ event: string; to: string; cause: string; detail: unknown }>;
}

let cluster: TestCluster;

beforeAll(() => {
  requireBinary();
  cluster = new TestCluster(5, {
    voters: 3,
    capabilities: (i) => (i < 3 ? ["bootstrap", "selfplay", "match"] : ["selfplay", "train", "match"]),
    extraToml: demoRunToml({ keepGames: 200 }),
  });
  cluster.startAll();
});

afterAll(async () => {
  await cluster?.stop();
});

async function leader(): Promise<string> {
  return waitFor(
    async () => {
      for (const n of cluster.running()) {
        const s = await cluster.status(n.id).catch(() => undefined);
        if (s?.leader && cluster.running().some((r) => r.id === s.leader?.id)) return s.leader.id;
      }
      return undefined;
    },
    15_000,
    "a leader among the running nodes",
  );
}

/** Voters hold the replicated state; any running one answers. */
function voter(): string {
  return cluster.running().find((n) => ["n1", "n2", "n3"].includes(n.id))?.id ?? "n1";
}

async function run(): Promise<RunView> {
  return (await cluster.get(voter(), "/runs/c4")) as RunView;
}

describe("a training run across leader failures", () => {
  test("trains each generation once, gates, promotes and rates, with the leader killed while training and gating", async () => {
    await cluster.withLogs(async () => {
      await waitFor(async () => (await run()).stage === "training", 60_000, "the first training");
      const first = await leader();
      await cluster.kill(first);
      await waitFor(async () => (await run()).stage === "evaluating", 60_000, "generation 1 trained after the kill");
      cluster.start(first);
      await waitFor(
        async () => (await run()).history.some((h) => h.event === "match-result"),
        60_000,
        "gate results counted",
      );
      const second = await leader();
      await cluster.kill(second);
      const promoted = await waitFor(
        async () => {
          const view = await run();
          return view.context.best && view.context.best.generation >= 1 ? view : undefined;
        },
        90_000,
        "a promotion after the second kill",
      );
      expect(promoted.context.lastDecision?.verdict).toBe("promoted");
      expect(promoted.context.lastDecision?.evidence).toMatchObject({ upper: expect.any(Number) });

      // Exactly one completed training per generation.
      const { items } = (await cluster.get(voter(), "/work?type=train&limit=1000")) as {
        items: Array<{ state: string; config: { generation: number } }>;
      };
      const completed = items.filter((i) => i.state === "completed").map((i) => i.config.generation);
      expect(new Set(completed).size).toBe(completed.length);
      const models = (await cluster.get(voter(), "/runs/c4/models")) as {
        models: Array<{ generation: number; holders: string[] }>;
      };
      // Generation 0 has spread by data sync: the registry names the nodes that hold it.
      expect(models.models.find((m) => m.generation === 0)?.holders.length).toBeGreaterThanOrEqual(2);
      const generations = models.models.map((m) => m.generation);
      expect(new Set(generations).size).toBe(generations.length);

      // The Elo table rates every model against generation 0, with an interval.
      const elo = (await cluster.get(voter(), "/runs/c4/elo")) as {
        anchor: string;
        ratings: Array<{ id: string; elo: number; low: number; high: number; generation: number | null }>;
      };
      const gen1 = elo.ratings.find((r) => r.generation === 1);
      expect(gen1).toBeDefined();
      expect(gen1?.low).toBeLessThan(gen1?.elo ?? 0);
      expect(gen1?.high).toBeGreaterThan(gen1?.elo ?? 0);
      expect(gen1?.elo).toBeGreaterThan(0);

      // Analytics: games per node in the last hour, each generation's losses and decision, promotions over time.
      const analytics = (await cluster.get(voter(), "/runs/c4/analytics")) as {
        selfplayLastHour: Array<{ node: string; games: number }>;
        generations: Array<{
          generation: number;
          loss: { policy: number } | null;
          decision: { verdict: string } | null;
        }>;
        promotions: Array<{ generation: number }>;
        eloHistory: Array<{ ratings: Record<string, [number, number, number]> }>;
      };
      expect(analytics.selfplayLastHour.reduce((a, n) => a + n.games, 0)).toBeGreaterThan(0);
      expect(analytics.generations.find((g) => g.generation === 1)?.loss?.policy).toBeGreaterThan(0);
      expect(analytics.promotions.length).toBeGreaterThanOrEqual(1);
      // Each decision kept the Elo table of its moment: generation 0 at 0, in every snapshot.
      expect(analytics.eloHistory.length).toBeGreaterThanOrEqual(1);
      for (const h of analytics.eloHistory) expect(h.ratings.g0?.[0]).toBe(0);

      // The CLI shows the same: the run and its Elo table, asked through any voter.
      const cli = (...args: string[]) => {
        const url = `http://${cluster.node(voter()).address}`;
        const proc = Bun.spawnSync([BIN, ...args, "--url", url, "--token", cluster.token]);
        if (proc.exitCode !== 0) throw new Error(`${args.join(" ")} exited ${proc.exitCode}: ${proc.stderr}`);
        return proc.stdout.toString();
      };
      expect(cli("runs")).toContain("c4");
      expect(cli("elo", "c4")).toMatch(/g1 [0-9a-f]{12}/);
      expect(JSON.parse(cli("models", "c4", "--json")).length).toBe(generations.length);
      // `runs c4 --follow` tells the run's story from the start, with the Elo table after each decision.
      const follow = Bun.spawn(
        [BIN, "runs", "c4", "--follow", "--url", `http://${cluster.node(voter()).address}`, "--token", cluster.token],
        {
          stdout: "pipe",
        },
      );
      let told = "";
      const reader = follow.stdout.getReader();
      await waitFor(
        async () => {
          const { value } = await reader.read();
          told += new TextDecoder().decode(value);
          return /Elo of the promoted generations: g0 \+0, g\d+ /.test(told);
        },
        30_000,
        "the followed story up to the first promotion",
      );
      follow.kill();
      expect(told).toContain("c4: generation 0 written by c4.bootstrap.0");
      // An operator pauses and resumes the run; the run says so and the history keeps the reason.
      expect(cli("pause", "c4", "--reason", "maintenance")).toContain("(paused)");
      expect(JSON.parse(cli("runs", "c4", "--json")).context.paused).toBe(true);
      expect(cli("resume", "c4")).not.toContain("(paused)");
      const { history } = (await cluster.get(voter(), "/runs/c4/history")) as { history: Array<{ cause: string }> };
      expect(history.some((h) => h.cause === "paused: maintenance")).toBe(true);

      // Retention: once the newer epochs hold the 200 games a training reads, epoch 0 is retired, and every node
      // that holds games (the trainers, not voters) deletes its folder and does not fetch it back.
      await waitFor(async () => ((await run()).context.games?.retiredBelow ?? 0) >= 1, 90_000, "epoch 0 retired");
      for (const trainer of ["n4", "n5"].filter((id) => cluster.running().some((n) => n.id === id))) {
        const manifest = await waitFor(
          async () => {
            const m = (await cluster.get(trainer, "/manifest?category=games")) as {
              files: Array<{ path: string }>;
              retired: Array<{ under: string; below: number; except: string[] }>;
            };
            const old = m.files.some((f) => f.path.startsWith("c4/000000/"));
            return !old && m.files.length > 0 ? m : undefined;
          },
          30_000,
          `epoch 0 deleted on ${trainer}`,
        );
        expect(manifest.retired).toEqual([{ under: "c4", below: expect.any(Number), except: [] }]);
      }
    });
  }, 300_000);
});
