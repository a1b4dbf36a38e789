/**
 * Elo fit time: 1,000 models in a chain of parents plus two baselines, 1,000,000 games aggregated into about
 * 10,000 distinct pairs (each model against its 8 predecessors and both baselines). Target: under 1 s.
 *   bun bench/elo/run.ts [--models 1000]
 */
import { parseArgs } from "node:util";
import { type PairResult, type Player, rateElo } from "../../src/eval/elo.ts";
import { seededRandom } from "../../tests/sim/rng.ts";

const { values } = parseArgs({ options: { models: { type: "string", default: "1000" } } });
const count = Number(values.models);
const players: Player[] = [{ id: "random" }, { id: "mcts:200" }];
const truth = new Map<string, number>([
  ["random", 0],
  ["mcts:200", 400],
]);
const results: PairResult[] = [];
const random = seededRandom(12345);
for (let g = 0; g < count; g++) {
  const id = `g${g}`;
  players.push(g === 0 ? { id } : { id, parent: `g${g - 1}` });
  truth.set(id, 100 + g * 2);
}
const opponents = (g: number) => [
  ...Array.from({ length: Math.min(8, g) }, (_, k) => `g${g - 1 - k}`),
  "random",
  "mcts:200",
];
const perPair = Math.round(1_000_000 / (count * 10));
for (let g = 0; g < count; g++) {
  for (const o of opponents(g)) {
    const p = 1 / (1 + 10 ** (((truth.get(o) ?? 0) - (truth.get(`g${g}`) ?? 0)) / 400));
    let wins = 0;
    for (let k = 0; k < perPair; k++) if (random() < p) wins++;
    results.push({ a: `g${g}`, b: o, wins, draws: 0, losses: perPair - wins });
  }
}
const totalGames = results.reduce((s, r) => s + r.wins + r.draws + r.losses, 0);
const started = performance.now();
const ratings = rateElo(players, results, { anchor: "random", versus: `g${count - 2}` });
const ms = performance.now() - started;
const last = ratings.at(-1);
console.log(
  `elo: ${players.length} players, ${results.length} pairs, ${totalGames} games: ${ms.toFixed(0)} ms (target < 1000 ms) ${ms < 1000 ? "met" : "NOT met"}`,
);
console.log(
  `     newest ${last?.id}: ${last?.elo.toFixed(0)} ± ${((last?.stderr ?? 0) * 1.96).toFixed(0)} (true ${truth.get(last?.id ?? "")}), P(stronger than g${count - 2}) ${last?.pStronger?.toFixed(3)}`,
);
