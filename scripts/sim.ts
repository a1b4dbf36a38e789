// Runs the Raft chaos simulation over many seeds: `bun run sim --seeds 100000 [--voters 3,5] [--from 1]`.
// Prints a one-line replay command for every failing seed and exits non-zero if any failed.
import { parseArgs } from "node:util";
import { chaos } from "../tests/sim/raft-chaos.ts";

const { values } = parseArgs({
  options: {
    seeds: { type: "string", default: "1000" },
    from: { type: "string", default: "1" },
    voters: { type: "string", default: "3,5" },
  },
});
const count = Number(values.seeds);
const from = Number(values.from);
const sizes = values.voters.split(",").map(Number);
let failed = 0;
const started = performance.now();
for (const voters of sizes) {
  for (let seed = from; seed < from + count; seed++) {
    try {
      await chaos(seed, voters);
    } catch (e) {
      failed++;
      console.log(`FAIL ${(e as Error).message}`);
      console.log(`  replay: RAFT_SEED=${seed} RAFT_VOTERS=${voters} bun test tests/sim/raft.test.ts`);
    }
    if (seed % 1000 === 0) console.log(`${voters} voters: ${seed - from + 1}/${count} seeds, ${failed} failed`);
  }
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(
  `${count * sizes.length - failed} passed, ${failed} failed (${count} seeds x ${sizes.join(",")} voters, ${seconds} s)`,
);
process.exit(failed > 0 ? 1 : 0);
