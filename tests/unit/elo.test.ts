import { describe, expect, test } from "bun:test";
import { rateElo } from "../../src/eval/elo.ts";
import { normalCdf } from "../../src/eval/normal.ts";

const games = (a: string, b: string, n: number, score: number) => ({
  a,
  b,
  wins: Math.round(n * score),
  draws: 0,
  losses: n - Math.round(n * score),
});

describe("Bradley-Terry Elo", () => {
  test("A beats B 75%, B beats C 75%, A beats C 90%: about +191, 0, -191", () => {
    const ratings = rateElo(
      [{ id: "A" }, { id: "B" }, { id: "C" }],
      [games("A", "B", 10_000, 0.75), games("B", "C", 10_000, 0.75), games("A", "C", 10_000, 0.9)],
      { anchor: "B" },
    );
    const elo = Object.fromEntries(ratings.map((r) => [r.id, r.elo]));
    expect(elo.A).toBeCloseTo(191, -1);
    expect(elo.B).toBe(0);
    expect(elo.C).toBeCloseTo(-191, -1);
    expect(Math.abs((elo.A ?? 0) + (elo.C ?? 0))).toBeLessThan(1);
    expect(ratings.find((r) => r.id === "A")?.stderr).toBeGreaterThan(0);
  });

  test("a fit started from the last one's ratings (a few games later) reaches the same ratings and intervals", () => {
    const players = [{ id: "g0" }, ...Array.from({ length: 40 }, (_, g) => ({ id: `g${g + 1}`, parent: `g${g}` }))];
    const results = players.slice(1).map((p, g) => games(p.id, `g${g}`, 200, 0.55 + (g % 5) / 50));
    const before = rateElo(players, results, { anchor: "g0" });
    const later = [...results, games("g40", "g39", 60, 0.7)];
    const cold = rateElo(players, later, { anchor: "g0" });
    const warm = rateElo(players, later, { anchor: "g0", initial: new Map(before.map((r) => [r.id, r.elo])) });
    for (let i = 0; i < cold.length; i++) {
      expect(warm[i]?.elo).toBeCloseTo(cold[i]?.elo ?? Number.NaN, 6);
      expect(warm[i]?.stderr).toBeCloseTo(cold[i]?.stderr ?? Number.NaN, 6);
    }
    expect(warm.find((r) => r.id === "g0")?.elo).toBe(0);
  });

  test("an unbeaten player stays finite, held by its parent's prior", () => {
    const [gen0, gen1] = rateElo([{ id: "g0" }, { id: "g1", parent: "g0" }], [games("g1", "g0", 20, 1)], {
      anchor: "g0",
    });
    expect(gen0?.elo).toBe(0);
    expect(Number.isFinite(gen1?.elo)).toBe(true);
    expect(gen1?.elo).toBeGreaterThan(150);
  });

  test("intervals shrink with more games", () => {
    const stderr = (n: number) =>
      rateElo([{ id: "a" }, { id: "b" }], [games("a", "b", n, 0.6)], { anchor: "a" })[1]?.stderr ?? 0;
    expect(stderr(1_000)).toBeLessThan(stderr(100) / 2);
  });

  test("baselines are rated in the same fit: a chain through them places every model", () => {
    const ratings = rateElo(
      [{ id: "random" }, { id: "g0" }, { id: "g1", parent: "g0" }],
      [games("g0", "random", 200, 0.6), games("g1", "random", 200, 0.9)],
      { anchor: "random" },
    );
    const [, g0, g1] = ratings;
    expect(g1?.elo).toBeGreaterThan(g0?.elo ?? 0);
    expect(g1?.low).toBeLessThan(g1?.elo ?? 0);
    expect(g1?.high).toBeGreaterThan(g1?.elo ?? 0);
  });

  test("an anchor or a versus that is not a player is refused", () => {
    expect(() => rateElo([{ id: "a" }], [], { anchor: "zz" })).toThrow("anchor zz is not a player");
    expect(() => rateElo([{ id: "a" }], [], { anchor: "a", versus: "zz" })).toThrow("versus zz is not a player");
  });

  test("P(stronger) against the anchor is the normal tail of elo / stderr", () => {
    const [a, b] = rateElo([{ id: "a" }, { id: "b" }], [games("b", "a", 400, 0.55)], { anchor: "a", versus: "a" });
    expect(a?.pStronger).toBe(0.5);
    expect(b?.pStronger).toBeCloseTo(normalCdf((b?.elo ?? 0) / (b?.stderr ?? 1)), 9);
    expect(b?.pStronger).toBeGreaterThan(0.9);
  });

  test("P(stronger) uses the covariance: two models far from the anchor but close to each other are told apart", () => {
    const ratings = rateElo(
      [{ id: "g0" }, { id: "g1", parent: "g0" }, { id: "g2", parent: "g1" }],
      [games("g1", "g0", 20, 0.55), games("g2", "g1", 2_000, 0.6)],
      { anchor: "g0", versus: "g1" },
    );
    const [, g1, g2] = ratings;
    const gap = (g2?.elo ?? 0) - (g1?.elo ?? 0);
    expect(gap).toBeCloseTo(70, -1);
    expect(g1?.stderr).toBeGreaterThan(gap / 2);
    const independent = normalCdf(gap / Math.hypot(g1?.stderr ?? 0, g2?.stderr ?? 0));
    expect(independent).toBeLessThan(0.99);
    expect(g2?.pStronger).toBeGreaterThan(0.9999);
    expect(g1?.pStronger).toBe(0.5);
  });
});
