import { describe, expect, test } from "bun:test";
import type { JobTemplate } from "../../src/config/schema.ts";
import type { NodeInfo } from "../../src/shared/node-info.ts";
import { headroom } from "../../src/work/headroom.ts";

const GIB = 1024 ** 3;

function info(over: { freeGib?: number; totalGib?: number; load1?: number; cpus?: number; gpuUtil?: number[] } = {}) {
  return {
    version: "test",
    capabilities: ["selfplay", "training"],
    slots: 4,
    voter: false,
    nat: false,
    cpu: { count: over.cpus ?? 8, load1: over.load1 ?? 1 },
    memory: { totalBytes: (over.totalGib ?? 64) * GIB, freeBytes: (over.freeGib ?? 32) * GIB },
    disk: { totalBytes: 1000 * GIB, freeBytes: 500 * GIB },
    gpus: (over.gpuUtil ?? []).map((u, i) => ({
      name: `gpu${i}`,
      memoryTotalMb: 24_000,
      memoryUsedMb: 1_000,
      utilizationPct: u,
    })),
    sampledAt: 0,
  } satisfies NodeInfo;
}

const template = (memoryGb?: number): JobTemplate => ({
  command: ["true"],
  timeout: 60_000,
  slots: 1,
  requires: memoryGb === undefined ? {} : { memory_gb: memoryGb },
  env: {},
});

const TEMPLATES = { selfplay: template(), training: template(16) };
const TYPES = ["selfplay", "training"];

describe("what a worker may claim from its own resource sample", () => {
  test("a healthy node offers every type and every GPU", () => {
    const room = headroom(info({ gpuUtil: [0, 50] }), TYPES, TEMPLATES);
    expect(room).toEqual({ ok: true, types: TYPES, gpus: info({ gpuUtil: [0, 50] }).gpus });
  });

  test("no sample yet: nothing is claimed", () => {
    expect(headroom(null, TYPES, TEMPLATES)).toEqual({ ok: false, reason: "no resource sample yet" });
  });

  test("under 5% free memory: nothing is claimed, and the reason gives the figures", () => {
    const room = headroom(info({ freeGib: 2, totalGib: 64 }), TYPES, TEMPLATES);
    expect(room.ok).toBe(false);
    if (!room.ok) expect(room.reason).toBe("free memory 2.0 GiB is under 5% of 64.0 GiB");
  });

  test("an oversubscribed CPU: nothing is claimed", () => {
    const room = headroom(info({ load1: 40, cpus: 8 }), TYPES, TEMPLATES);
    expect(room.ok).toBe(false);
    if (!room.ok) expect(room.reason).toContain("load 40.0 is over 4x the 8 CPUs");
    expect(headroom(info({ load1: 31, cpus: 8 }), TYPES, TEMPLATES).ok).toBe(true);
  });

  test("a type whose template needs more memory than is free is not offered", () => {
    const room = headroom(info({ freeGib: 8 }), TYPES, TEMPLATES);
    expect(room).toMatchObject({ ok: true, types: ["selfplay"] });
    const none = headroom(info({ freeGib: 8 }), ["training"], TEMPLATES);
    expect(none).toEqual({ ok: false, reason: "free memory fits none of this node's job types" });
  });

  test("a GPU busy with something else is not offered", () => {
    const room = headroom(info({ gpuUtil: [95, 10, 90] }), TYPES, TEMPLATES);
    expect(room.ok && room.gpus.map((g) => g.name)).toEqual(["gpu1"]);
  });
});
