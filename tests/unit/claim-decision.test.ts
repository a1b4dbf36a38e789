import { describe, expect, test } from "bun:test";
import type { JobTemplate } from "../../src/config/schema.ts";
import type { NodeInfo } from "../../src/shared/node-info.ts";
import { type ClaimInputs, decideClaim } from "../../src/work/claim-decision.ts";

const GIB = 1024 ** 3;

const template = (slots: number, memoryGb?: number): JobTemplate => ({
  command: ["true"],
  timeout: 60_000,
  slots,
  requires: memoryGb === undefined ? {} : { memory_gb: memoryGb },
  env: {},
});

function sample(freeGib: number, gpus: Array<{ usedMb: number; util: number }> = []): NodeInfo {
  return {
    version: "test",
    capabilities: [],
    slots: 4,
    voter: false,
    nat: false,
    cpu: { count: 8, load1: 1 },
    memory: { totalBytes: 64 * GIB, freeBytes: freeGib * GIB },
    disk: { totalBytes: 1000 * GIB, freeBytes: 200 * GIB },
    gpus: gpus.map((g, i) => ({
      name: `gpu${i}`,
      memoryTotalMb: 24_576,
      memoryUsedMb: g.usedMb,
      utilizationPct: g.util,
    })),
    sampledAt: 0,
  };
}

const inputs = (over: Partial<ClaimInputs<string>> = {}): ClaimInputs<string> => ({
  nodeId: "n1",
  capabilities: ["selfplay", "training", "gpu"],
  jobs: { selfplay: template(1), training: template(2, 16) },
  slots: 4,
  busySlots: 1,
  resources: sample(32),
  leader: "n2",
  ...over,
});

describe("the worker's claim decision", () => {
  test("claims up to its free slots from the leader, offering what fits and its resources", () => {
    const d = decideClaim(
      inputs({
        resources: sample(32, [
          { usedMb: 4_096, util: 10 },
          { usedMb: 0, util: 99 },
        ]),
      }),
    );
    if (!d.claim) throw new Error(`expected a claim, got ${d.reason}`);
    expect(d.to).toBe("n2");
    expect(d.max).toBe(3);
    expect(d.offer).toEqual({
      node: "n1",
      types: ["selfplay", "training"],
      capabilities: ["selfplay", "training", "gpu"],
      freeSlots: 3,
      // The busy GPU is not offered, nor its memory.
      gpus: 1,
      freeGpuMemoryGb: 20,
      freeDiskGb: 200,
      freeMemoryGb: 32,
      slotsPerType: { selfplay: 1, training: 2 },
    });
  });

  test("offers only the types whose memory needs fit", () => {
    const d = decideClaim(inputs({ resources: sample(8) }));
    expect(d.claim && d.offer.types).toEqual(["selfplay"]);
  });

  test("no claim, silently, without a free slot, a leader or a type it runs", () => {
    expect(decideClaim(inputs({ busySlots: 4 }))).toEqual({ claim: false, reason: null });
    expect(decideClaim(inputs({ leader: null }))).toEqual({ claim: false, reason: null });
    expect(decideClaim(inputs({ capabilities: ["gpu"] }))).toEqual({ claim: false, reason: null });
  });

  test("no claim, with the reason, while the machine is short of memory or has no sample yet", () => {
    expect(decideClaim(inputs({ resources: sample(1) }))).toEqual({
      claim: false,
      reason: "free memory 1.0 GiB is under 5% of 64.0 GiB",
    });
    expect(decideClaim(inputs({ resources: null }))).toEqual({ claim: false, reason: "no resource sample yet" });
  });
});
