import { describe, expect, test } from "bun:test";
import { llrLogistic, llrNormalized, type Pentanomial, sprt } from "../../src/eval/sprt.ts";
import { simulateSprt } from "../../src/eval/sprt-simulation.ts";
import { seededRandom } from "../sim/rng.ts";

const GATE = { elo0: 0, elo1: 50, alpha: 0.05, beta: 0.05 };

// Reference values: fishtest's server/fishtest/stats/LLRcalc.py (LLR_logistic, LLR_normalized, scipy's brentq)
// and stat_util.get_elo, run with Python 3.11 and scipy 1.17 on these counts.
const LOGISTIC: [readonly number[], number, number, number][] = [
  [[2, 5, 20, 25, 20], 0, 50, 7.90701666071455],
  [[20, 25, 20, 5, 2], 0, 50, -9.914212030570708],
  [[3, 6, 12, 7, 4], 0, 50, -0.35441035845454305],
  [[0, 0, 400, 0, 0], 0, 50, -61.681430504493186],
  [[0, 3, 10, 14, 9], 0, 50, 4.808131540448713],
  [[5, 0, 0, 0, 7], 0, 50, 0.1639900529548984],
  [[200, 900, 1800, 1000, 230], 0, 5, 3.3032302151739317],
  [[1017, 5927, 11470, 6160, 1082], 0, 2, 3.105148750309305],
  [[1, 2, 3, 2, 1], -3, 1, 0.0008946181126674394],
  [[30, 40, 60], 0, 50, 4.334234751248938],
  [[60, 40, 30], 0, 50, -8.075393250819848],
  [[0, 100, 0], 0, 50, -15.413408870887883],
  [[0, 0, 12], 0, 50, 1.6030814879067476],
  [[4000, 10000, 4300], 0, 5, 5.341861832779782],
];
const NORMALIZED: [readonly number[], number, number, number][] = [
  [[2, 5, 20, 25, 20], 0, 2, 0.33812491653976157],
  [[1017, 5927, 11470, 6160, 1082], 0, 2, 2.4571725560793314],
  [[20, 25, 20, 5, 2], 0, 2, -0.34251622734770765],
  [[0, 0, 400, 0, 0], 0, 2, -0.02310090760834554],
  [[3, 6, 12, 7, 4], -1, 3, 0.041030829536017555],
  [[30, 40, 60], 0, 2, 0.20541588034023173],
  [[4000, 10000, 4300], 0, 2, 2.2611164136603863],
];
type Results = Parameters<typeof llrLogistic>[0];

describe("the GSPRT, against fishtest's own numbers", () => {
  test.each(LOGISTIC)("LLR_logistic %p elo0 %p elo1 %p = %p", (results, elo0, elo1, expected) => {
    expect(llrLogistic(results as Results, elo0, elo1)).toBeCloseTo(expected, 6);
  });

  test.each(NORMALIZED)("LLR_normalized %p nelo0 %p nelo1 %p = %p", (results, elo0, elo1, expected) => {
    expect(llrNormalized(results as Results, elo0, elo1)).toBeCloseTo(expected, 6);
  });

  test("get_elo: estimate, 95% interval and LOS", () => {
    const a = sprt([2, 5, 20, 25, 20], GATE).elo;
    expect(a.estimate).toBeCloseTo(142.61892940552505, 6);
    expect(a.low).toBeCloseTo(96.7370027561845, 4);
    expect(a.high).toBeCloseTo(193.7910303242648, 4);
    expect(a.los).toBeCloseTo(0.9999999999571973, 6);
    const b = sprt([5, 0, 0, 0, 7], GATE).elo;
    expect([b.estimate, b.low, b.high, b.los]).toEqual([
      expect.closeTo(58.43632800266136, 6),
      expect.closeTo(-143.5367588375048, 3),
      expect.closeTo(318.52802856820415, 3),
      expect.closeTo(0.7209027557286697, 6),
    ]);
    const c = sprt([30, 40, 60], GATE).elo;
    expect([c.estimate, c.low, c.high]).toEqual([
      expect.closeTo(81.64799306236992, 6),
      expect.closeTo(32.52810269311641, 3),
      expect.closeTo(134.22302102943988, 3),
    ]);
  });
});

describe("the gate's decisions", () => {
  test("bounds at alpha = beta = 0.05 are ±2.944; no results, no decision", () => {
    const s = sprt([0, 0, 0, 0, 0], GATE);
    expect(s.lower).toBeCloseTo(Math.log(0.05 / 0.95), 12);
    expect(s.upper).toBeCloseTo(2.94443897916644, 12);
    expect(s).toMatchObject({ llr: 0, decision: "continue", games: 0 });
  });

  test("draws do not fool it: all-draw pairs or games reject a gain of elo1", () => {
    const pairs = sprt([0, 0, 400, 0, 0], GATE);
    expect(pairs.decision).toBe("reject");
    expect(pairs.games).toBe(800);
    expect(pairs.elo.estimate).toBeCloseTo(0, 6);
    expect(sprt([0, 0, 10, 0, 0], GATE).llr).toBeLessThan(0);
    expect(sprt([0, 100, 0], GATE).decision).toBe("reject");
  });

  test("a clear winner is accepted, a clear loser rejected, an even match goes on", () => {
    expect(sprt([2, 5, 20, 25, 20], GATE).decision).toBe("accept");
    expect(sprt([20, 25, 20, 5, 2], GATE).decision).toBe("reject");
    expect(sprt([3, 6, 12, 7, 4], GATE).decision).toBe("continue");
    expect(sprt([1017, 5927, 11470, 6160, 1082], { ...GATE, elo1: 2, model: "normalized" })).toMatchObject({
      decision: "continue",
      llr: expect.closeTo(2.4571725560793314, 6),
    });
    expect(sprt([1017, 5927, 11470, 6160, 1082], { ...GATE, elo1: 2 }).decision).toBe("accept");
  });

  test("the LLR grows with the evidence: k times the pairs, k times the LLR", () => {
    const one: Pentanomial = [3, 8, 20, 11, 6];
    const four = one.map((c) => c * 4) as unknown as Pentanomial;
    expect(llrLogistic(four, 0, 50)).toBeCloseTo(4 * llrLogistic(one, 0, 50), 9);
  });

  test("simulated: a candidate elo1 stronger passes about 1 - beta of the time, an equal one about alpha", () => {
    const at = (trueElo: number, seed: number) =>
      simulateSprt({
        trueElo,
        drawRate: 0.2,
        bounds: GATE,
        runs: 300,
        maxPairs: 4_000,
        batchPairs: 8,
        random: seededRandom(seed),
      });
    const stronger = at(50, 1);
    const equal = at(0, 2);
    expect(stronger.passRate).toBeGreaterThan(0.88);
    expect(equal.passRate).toBeLessThan(0.1);
    expect(equal.rejectRate).toBeGreaterThan(0.9);
    expect(stronger.averageGames).toBeGreaterThan(100);
    expect(stronger.averageGames).toBeLessThan(600);
  });
});
