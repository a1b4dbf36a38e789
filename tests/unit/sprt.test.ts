import { describe, expect, test } from "bun:test";
import { llrLogistic, logisticScore, type Pentanomial, sprt } from "../../src/eval/sprt.ts";
import { seededRandom } from "../sim/rng.ts";

const GATE = { elo0: 0, elo1: 50, alpha: 0.05, beta: 0.05 };

describe("the pentanomial GSPRT", () => {
  test("bounds at alpha = beta = 0.05 are ±2.944", () => {
    const s = sprt([0, 0, 0, 0, 0], GATE);
    expect(s.lower).toBeCloseTo(-2.944, 3);
    expect(s.upper).toBeCloseTo(2.944, 3);
    expect(s).toMatchObject({ llr: 0, decision: "continue", pairs: 0 });
  });

  test("draws do not fool it: an all-draw match rejects a gain of elo1", () => {
    expect(llrLogistic([0, 0, 10, 0, 0], 0, 50)).toBeLessThan(0);
    const many = sprt([0, 0, 400, 0, 0], GATE);
    expect(many.decision).toBe("reject");
    expect(many.elo.estimate).toBeCloseTo(0, 6);
  });

  test("a clear winner is accepted, a clear loser rejected", () => {
    expect(sprt([2, 5, 20, 25, 20], GATE).decision).toBe("accept");
    expect(sprt([20, 25, 20, 5, 2], GATE).decision).toBe("reject");
    expect(sprt([3, 6, 12, 7, 4], GATE).decision).toBe("continue");
  });

  test("the LLR grows with the evidence: k times the pairs, k times the LLR", () => {
    const one: Pentanomial = [3, 8, 20, 11, 6];
    const four = one.map((c) => c * 4) as unknown as Pentanomial;
    expect(llrLogistic(four, 0, 50)).toBeCloseTo(4 * llrLogistic(one, 0, 50), 9);
  });

  test("near equal strength it matches the normal approximation fishtest's LLR_normalized uses", () => {
    const pairs: Pentanomial = [200, 900, 1800, 1000, 230];
    const n = pairs.reduce((a, b) => a + b, 0);
    const mean = pairs.reduce((s, c, i) => s + (c * i) / 4, 0) / n;
    const variance = pairs.reduce((s, c, i) => s + c * (i / 4 - mean) ** 2, 0) / n;
    const [s0, s1] = [logisticScore(0), logisticScore(5)];
    const approx = (n * (s1 - s0) * (2 * mean - s0 - s1)) / (2 * variance);
    expect(llrLogistic(pairs, 0, 5) / approx).toBeCloseTo(1, 2);
  });

  test("simulated: a candidate truly elo1 stronger passes about 1 - beta of the time, an equal one about alpha", () => {
    const passRate = (trueElo: number, seed: number) => {
      const random = seededRandom(seed);
      const score = logisticScore(trueElo);
      const draw = 0.2;
      const game = () => {
        const r = random();
        return r < score - draw / 2 ? 2 : r < score + draw / 2 ? 1 : 0;
      };
      let passed = 0;
      const runs = 150;
      for (let run = 0; run < runs; run++) {
        const pairs: [number, number, number, number, number] = [0, 0, 0, 0, 0];
        for (let i = 1; i <= 4_000; i++) {
          const k = game() + game();
          pairs[k] = (pairs[k] as number) + 1;
          if (i % 8 !== 0) continue;
          const d = sprt(pairs, GATE).decision;
          if (d === "continue") continue;
          if (d === "accept") passed++;
          break;
        }
      }
      return passed / runs;
    };
    expect(passRate(50, 1)).toBeGreaterThan(0.88);
    expect(passRate(0, 2)).toBeLessThan(0.12);
  }, 20_000);
});
