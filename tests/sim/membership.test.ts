import { describe, expect, test } from "bun:test";
import { suspicionBounds } from "../../src/membership/suspicion.ts";
import { SimCluster } from "./membership-sim.ts";

const SEEDS = Array.from({ length: Number(process.env.SIM_SEEDS ?? 30) }, (_, i) => i + 1);

/** Fails with the seed in the message, so `SIM_SEED=<n> bun test tests/sim` replays it. */
function forSeeds(name: string, body: (seed: number) => void): void {
  const only = process.env.SIM_SEED ? [Number(process.env.SIM_SEED)] : SEEDS;
  test(name, () => {
    for (const seed of only) {
      try {
        body(seed);
      } catch (e) {
        throw new Error(`${(e as Error).message}\nreplay: SIM_SEED=${seed} bun test tests/sim/membership.test.ts`);
      }
    }
  });
}

describe("SWIM membership in the simulator", () => {
  forSeeds("10 nodes converge to all alive despite 2% message loss", (seed) => {
    const sim = new SimCluster({ seed, nodes: 10, lossRate: 0.02 });
    sim.waitFor(() => sim.converged(), 10_000, "all 10 alive on every node");
  });

  forSeeds("a crashed node is declared dead by every survivor, and no survivor is", (seed) => {
    const sim = new SimCluster({ seed, nodes: 10, lossRate: 0.01 });
    sim.waitFor(() => sim.converged(), 10_000, "convergence");
    sim.crash("n4");
    const took = sim.waitFor(() => sim.allSee("n4", "dead"), 15_000, "n4 dead everywhere");
    expect(took).toBeGreaterThanOrEqual(sim.timing.suspicionTimeoutMs);
    expect(sim.traces.filter((t) => t.to === "dead" && t.instance !== "n4")).toEqual([]);
    expect(sim.converged()).toBe(true);
  });

  forSeeds("confirmations shrink a crashed node's suspicion, never below the minimum after the first", (seed) => {
    const sim = new SimCluster({ seed, nodes: 10, lossRate: 0.01 });
    const bounds = suspicionBounds(10, sim.timing);
    sim.waitFor(() => sim.converged(), 10_000, "convergence");
    sim.crash("n4");
    const took = sim.waitFor(() => sim.allSee("n4", "dead"), 15_000, "n4 dead everywhere");
    // A lone suspicion would last the maximum; independent failed probes brought it down.
    expect(took).toBeLessThan(bounds.maxMs / 2);
    const aboutN4 = sim.traces.filter((t) => t.instance === "n4");
    expect(aboutN4.some((t) => t.event === "suspect-confirmed")).toBe(true);
    const firstSuspicion = Math.min(...aboutN4.filter((t) => t.to === "suspect").map((t) => t.at));
    const verdicts = aboutN4.filter((t) => t.event === "suspicion-expired").map((t) => t.at - firstSuspicion);
    expect(verdicts.length).toBeGreaterThan(0);
    expect(Math.min(...verdicts)).toBeGreaterThanOrEqual(bounds.minMs);
  });

  forSeeds("a node paused for 2 s is suspected at most, never declared dead", (seed) => {
    const sim = new SimCluster({ seed, nodes: 10, lossRate: 0.01 });
    sim.waitFor(() => sim.converged(), 10_000, "convergence");
    sim.pause("n3");
    sim.run(2_000);
    sim.resume("n3");
    sim.run(suspicionBounds(10, sim.timing).maxMs * 2);
    expect(sim.traces.filter((t) => t.to === "dead")).toEqual([]);
    expect(sim.converged()).toBe(true);
  });

  forSeeds("a restarted node rejoins with a higher incarnation and is alive everywhere", (seed) => {
    const sim = new SimCluster({ seed, nodes: 5 });
    sim.waitFor(() => sim.converged(), 10_000, "convergence");
    sim.crash("n2");
    sim.waitFor(() => sim.allSee("n2", "dead"), 15_000, "n2 dead everywhere");
    const deadIncarnation = sim.node("n1").core.get("n2")?.incarnation ?? -1;
    const restartedAt = sim.now;
    sim.restart("n2");
    sim.waitFor(() => sim.converged(), 10_000, "n2 alive everywhere again");
    expect(sim.node("n1").core.get("n2")?.incarnation).toBeGreaterThan(deadIncarnation);
    sim.waitFor(
      () => sim.up().every((o) => o.id === "n2" || (o.core.get("n2")?.info?.sampledAt ?? 0) >= restartedAt),
      5_000,
      "the restarted n2's fresh info reaches everyone",
    );
  });

  forSeeds("a graceful leave is seen as left, not dead", (seed) => {
    const sim = new SimCluster({ seed, nodes: 5 });
    sim.waitFor(() => sim.converged(), 10_000, "convergence");
    sim.leave("n5");
    sim.waitFor(() => sim.allSee("n5", "left"), 5_000, "n5 left everywhere");
    sim.run(sim.timing.suspicionTimeoutMs * 2);
    expect(sim.allSee("n5", "left")).toBe(true);
  });

  forSeeds("a healed partition merges back to one cluster", (seed) => {
    const sim = new SimCluster({ seed, nodes: 6 });
    sim.waitFor(() => sim.converged(), 10_000, "convergence");
    for (const id of ["n1", "n2", "n3"]) sim.pause(id);
    sim.run(sim.timing.suspicionTimeoutMs + 5_000);
    for (const id of ["n1", "n2", "n3"]) sim.resume(id);
    sim.waitFor(() => sim.converged(), 30_000, "one cluster again after the partition heals");
  });

  test("the same seed gives the same run", () => {
    const run = () => {
      const sim = new SimCluster({ seed: 42, nodes: 6, lossRate: 0.05 });
      sim.run(3_000);
      sim.crash("n2");
      sim.run(8_000);
      return JSON.stringify(sim.traces);
    };
    expect(run()).toBe(run());
  });
});
