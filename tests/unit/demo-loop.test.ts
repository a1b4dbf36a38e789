import { describe, expect, test } from "bun:test";
import { COLUMNS, INPUT_SIZE } from "../../src/demo/game.ts";
import { addPair, emptyResult, playGame, randomOpening } from "../../src/demo/match.ts";
import { Network } from "../../src/demo/net.ts";
import { makePlayer } from "../../src/demo/players.ts";
import { Rng } from "../../src/demo/random.ts";
import { parseGameLine, playSelfPlayGame, SELFPLAY_DEFAULTS } from "../../src/demo/selfplay.ts";
import { buildSamples, TRAIN_DEFAULTS, trainer } from "../../src/demo/train.ts";

const options = { ...SELFPLAY_DEFAULTS, sims: 16 };

describe("self-play, training and matches", () => {
  test("self-play is deterministic under a seed and writes valid game lines", () => {
    const net = Network.create(3);
    const games = (seed: number) => [0, 1].map(() => playSelfPlayGame(net, options, new Rng(seed)));
    const [a] = games(4);
    expect(games(4)).toEqual(games(4));
    expect(games(5)).not.toEqual(games(4));
    const record = a as ReturnType<typeof playSelfPlayGame>;
    expect(parseGameLine(JSON.stringify(record))).toEqual(record);
    expect(() => parseGameLine(JSON.stringify({ ...record, result: -record.result || 1 }))).toThrow();
    expect(() => parseGameLine(JSON.stringify({ ...record, visits: record.visits.slice(1) }))).toThrow("visits");
  });

  test("samples carry the result for the side to move and are doubled by mirroring", () => {
    // First player wins on the bottom row: "1122334".
    const visits = Array.from({ length: 7 }, (_, ply) =>
      Array.from({ length: COLUMNS }, (_, c) => (c === ply ? 3 : 1)),
    );
    const samples = buildSamples([JSON.stringify({ moves: "1122334", visits, result: 1 })]);
    expect(samples.count).toBe(14);
    expect(Array.from(samples.values.slice(0, 4))).toEqual([1, 1, -1, -1]);
    const policy = Array.from(samples.policies.slice(0, COLUMNS));
    expect(policy[0]).toBeCloseTo(3 / 9);
    expect(Array.from(samples.policies.slice(COLUMNS, 2 * COLUMNS))).toEqual(policy.reverse());
    // The mirror of the position after "1" has the opponent's stone in column 7.
    expect(samples.inputs[2 * INPUT_SIZE + 42]).toBe(1);
    expect(samples.inputs[3 * INPUT_SIZE + 42 + 6]).toBe(1);
  });

  test("training is deterministic under a seed", () => {
    const net = Network.create(3);
    const lines = [0, 1, 2].map((i) => JSON.stringify(playSelfPlayGame(net, options, new Rng(i))));
    const samples = buildSamples(lines);
    const train = (seed: number): number[] => {
      const model = Network.create(3);
      const step = trainer(model, samples, { ...TRAIN_DEFAULTS, batch: 16 }, new Rng(seed));
      for (let s = 0; s < 5; s++) step();
      return Array.from(model.params);
    };
    expect(train(1)).toEqual(train(1));
    expect(train(1)).not.toEqual(train(2));
  });

  test("pairs count half-points 0..4 from A's side", () => {
    const result = emptyResult();
    addPair(result, 1, 1);
    addPair(result, 1, -1);
    addPair(result, 0, -1);
    addPair(result, -1, -1);
    expect(result).toEqual({ wins: 3, draws: 1, losses: 4, pairs: [1, 1, 1, 0, 1], games: 8 });
  });

  test("each opening is played with both colours, and search beats random", async () => {
    const rng = new Rng(1);
    const strong = makePlayer("mcts:50", { sims: 0, seed: 1 });
    const weak = makePlayer("random", { sims: 0, seed: 2 });
    const result = emptyResult();
    for (let p = 0; p < 4; p++) {
      const opening = randomOpening(2, rng);
      expect(opening.moves).toHaveLength(2);
      const asFirst = await playGame(strong, weak, opening, async () => {});
      const asSecond = -(await playGame(weak, strong, opening, async () => {}));
      addPair(result, asFirst, asSecond);
    }
    expect(result.games).toBe(8);
    expect(result.wins).toBeGreaterThanOrEqual(7);
  });
});
