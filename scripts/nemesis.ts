// The nemesis against real processes: `npm run nemesis -- --minutes 10 [--seed S] [--voters 5] [--kinds kill,pause]`.
// Needs Linux, root (network namespaces, tmpfs) and iptables. Prints the faults as they come, then the verdicts; a
// failing run keeps its history under test-artifacts/ and prints how to replay its schedule. Exits non-zero on failure.
import { parseArgs } from "node:util";
import { nemesisUnavailable, runNemesis } from "../tests/nemesis/run.ts";
import { FAULT_KINDS, type Fault } from "../tests/nemesis/schedule.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string" },
    seconds: { type: "string" },
    seed: { type: "string" },
    voters: { type: "string", default: "5" },
    kinds: { type: "string", default: FAULT_KINDS.join(",") },
    failpoints: { type: "string" },
  },
});
const unavailable = nemesisUnavailable();
if (unavailable) {
  console.error(`nemesis: ${unavailable}`);
  process.exit(2);
}
const durationMs = values.seconds ? Number(values.seconds) * 1000 : Number(values.minutes ?? "1") * 60_000;
const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 1_000_000);
const kinds = values.kinds.split(",") as Fault["kind"][];
for (const k of kinds) {
  if (!FAULT_KINDS.includes(k)) {
    console.error(`nemesis: unknown fault kind "${k}" (known: ${FAULT_KINDS.join(", ")})`);
    process.exit(2);
  }
}
console.log(`nemesis: seed ${seed}, ${durationMs / 1000} s, ${values.voters} voters, faults ${kinds.join(",")}`);
const report = await runNemesis({
  seed,
  durationMs,
  voters: Number(values.voters),
  kinds,
  failpoints: values.failpoints,
  artifacts: "test-artifacts",
  log: (line) => console.log(`  ${line}`),
});
const { register, work } = report;
console.log(
  `register: ${register.writes} writes acknowledged, ${register.unknown} of unknown outcome, ${register.reads} reads`,
);
for (const [key, verdict] of Object.entries(register.verdicts)) {
  console.log(
    `  ${key}: ${verdict.ok === true ? "linearizable" : verdict.ok === false ? `NOT linearizable: ${verdict.reason}` : `undecided after ${verdict.steps} steps`}`,
  );
}
console.log(
  `work: ${work.acked} acknowledged, ${work.completed} completed, ${work.lost.length} lost, ${work.doubled.length} completed twice`,
);
if (!report.ok) {
  console.log(`FAILED; history kept in ${report.kept}\n  replay: ${report.replay}`);
  process.exit(1);
}
console.log("passed");
