import { describe, expect, test } from "bun:test";
import { nemesisUnavailable, runNemesis } from "../nemesis/run.ts";
import { requireBinary } from "./harness.ts";

const unavailable = nemesisUnavailable();
if (unavailable) console.warn(`nemesis tests skipped: ${unavailable}`);

/**
 * A short nemesis run in CI (`npm run nemesis -- --minutes 10` runs the long one): five compiled voters under
 * partitions, kill -9, SIGSTOP and full disks while clients use the register and the queue. The register stays
 * linearizable and every acknowledged item completes once; with reads served without the lease (a planted bug),
 * the checker finds a stale read.
 */
describe.skipIf(unavailable !== null)("the nemesis against five compiled voters", () => {
  test("every fault kind on a random seed: linearizable, nothing lost, nothing completed twice", async () => {
    requireBinary();
    const seed = Number(process.env.NEMESIS_SEED ?? Math.floor(Math.random() * 1_000_000));
    const report = await runNemesis({ seed, durationMs: 40_000, artifacts: "test-artifacts" });
    console.log(`nemesis seed ${seed}: ${report.faults.join("; ")}`);
    if (!report.ok) console.error(`history kept in ${report.kept}; replay: ${report.replay}`);
    expect(report.register.writes).toBeGreaterThan(100);
    expect(report.register.reads).toBeGreaterThan(100);
    expect(report.work.acked).toBeGreaterThan(10);
    expect(Object.values(report.register.verdicts)).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(report.work).toMatchObject({ lost: [], doubled: [] });
  }, 180_000);

  test("a planted bug, linearizable reads served without the lease, is caught as a stale read", async () => {
    requireBinary();
    const report = await runNemesis({
      seed: 3,
      durationMs: 16_000,
      faults: [{ at: 3_000, fault: { kind: "isolate", node: 0 }, forMs: 6_000 }],
      failpoints: "consensus.read-without-lease=100000000",
      artifacts: "test-artifacts",
    });
    expect(report.ok).toBe(false);
    const refuted = Object.values(report.register.verdicts).filter((v) => v.ok === false);
    expect(refuted.length).toBeGreaterThan(0);
  }, 120_000);
});
