import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { parseMemAvailable, parseNvidiaSmi, type StaticNodeFacts, sampleResources } from "../../src/node/resources.ts";
import { nodeInfoSchema } from "../../src/shared/node-info.ts";

describe("parseNvidiaSmi", () => {
  test("parses a two-GPU CSV", () => {
    const csv = "NVIDIA H100 80GB HBM3, 81559, 1024, 37\nNVIDIA H100 80GB HBM3, 81559, 0, 0\n";
    expect(parseNvidiaSmi(csv)).toEqual([
      { name: "NVIDIA H100 80GB HBM3", memoryTotalMb: 81559, memoryUsedMb: 1024, utilizationPct: 37 },
      { name: "NVIDIA H100 80GB HBM3", memoryTotalMb: 81559, memoryUsedMb: 0, utilizationPct: 0 },
    ]);
  });

  test("tolerates [N/A], blank lines, CRLF and extra spaces", () => {
    const csv = "\n  Tesla T4 ,  15360 ,[N/A],  [N/A]  \r\n\n   \nNVIDIA A100-SXM4-40GB, 40960, 3, [Not Supported]\n";
    expect(parseNvidiaSmi(csv)).toEqual([
      { name: "Tesla T4", memoryTotalMb: 15360, memoryUsedMb: 0, utilizationPct: 0 },
      { name: "NVIDIA A100-SXM4-40GB", memoryTotalMb: 40960, memoryUsedMb: 3, utilizationPct: 0 },
    ]);
  });

  test("skips malformed lines and returns [] for empty output", () => {
    expect(parseNvidiaSmi("")).toEqual([]);
    expect(parseNvidiaSmi("No devices were found\n")).toEqual([]);
  });
});

describe("parseMemAvailable", () => {
  test("reads MemAvailable in bytes", () => {
    const meminfo = [
      "MemTotal:       131891524 kB",
      "MemFree:         2048000 kB",
      "MemAvailable:   98765432 kB",
      "Buffers:          123456 kB",
      "Cached:         90000000 kB",
    ].join("\n");
    expect(parseMemAvailable(meminfo)).toBe(98765432 * 1024);
  });

  test("returns null when MemAvailable is missing or garbled", () => {
    expect(parseMemAvailable("")).toBeNull();
    expect(parseMemAvailable("not a meminfo file")).toBeNull();
    expect(parseMemAvailable("MemTotal: 100 kB\nMemFree: 50 kB\n")).toBeNull();
    expect(parseMemAvailable("MemAvailable: lots kB\n")).toBeNull();
  });
});

describe("sampleResources", () => {
  let dataDir: string;
  const facts = (): StaticNodeFacts => ({
    version: "1.2.3",
    capabilities: ["selfplay", "train"],
    slots: 4,
    voter: true,
    nat: false,
    dataDir,
  });

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "resources-test-"));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test("returns sane numbers and copies the static facts through", async () => {
    const info = await sampleResources(facts(), () => 1_700_000_000_000);
    expect(() => v.parse(nodeInfoSchema, info)).not.toThrow();
    expect(info.version).toBe("1.2.3");
    expect(info.capabilities).toEqual(["selfplay", "train"]);
    expect(info.slots).toBe(4);
    expect(info.voter).toBe(true);
    expect(info.nat).toBe(false);
    expect(info.sampledAt).toBe(1_700_000_000_000);
    expect(info.cpu.count).toBeGreaterThanOrEqual(1);
    expect(info.cpu.load1).toBeGreaterThanOrEqual(0);
    expect(Math.round(info.cpu.load1 * 100) / 100).toBe(info.cpu.load1);
    expect(info.memory.totalBytes).toBeGreaterThan(0);
    expect(info.memory.freeBytes).toBeGreaterThanOrEqual(0);
    expect(info.memory.freeBytes).toBeLessThanOrEqual(info.memory.totalBytes);
    expect(info.disk.totalBytes).toBeGreaterThan(0);
    expect(info.disk.freeBytes).toBeGreaterThanOrEqual(0);
    expect(info.disk.freeBytes).toBeLessThanOrEqual(info.disk.totalBytes);
    expect(Array.isArray(info.gpus)).toBe(true);
  });

  test("a missing data dir yields zero disk instead of throwing", async () => {
    const info = await sampleResources({ ...facts(), dataDir: join(dataDir, "does-not-exist") });
    expect(info.disk).toEqual({ totalBytes: 0, freeBytes: 0 });
  });

  test("does not block the event loop while sampling", async () => {
    let last = performance.now();
    let maxGap = 0;
    let ticks = 0;
    const interval = setInterval(() => {
      const t = performance.now();
      maxGap = Math.max(maxGap, t - last);
      last = t;
      ticks++;
    }, 5);
    try {
      // Let the interval settle so the first gap isn't measured against test setup.
      await Bun.sleep(20);
      maxGap = 0;
      last = performance.now();
      for (let round = 0; round < 3; round++) {
        await Promise.all(Array.from({ length: 20 }, () => sampleResources(facts())));
        await Bun.sleep(10);
      }
    } finally {
      clearInterval(interval);
    }
    expect(ticks).toBeGreaterThan(0);
    expect(maxGap).toBeLessThan(100);
  });
});

describe("sampleResources with nvidia-smi on PATH", () => {
  let binDir: string;
  beforeAll(async () => {
    binDir = await mkdtemp(join(tmpdir(), "resources-fake-smi-"));
  });
  afterAll(async () => {
    await rm(binDir, { recursive: true, force: true });
  });

  // The nvidia-smi lookup is cached per process, so run the module in a fresh process with a fake on PATH.
  async function sampleInChild(script: string): Promise<unknown> {
    const smi = join(binDir, "nvidia-smi");
    await writeFile(smi, `#!/bin/sh\n${script}\n`);
    await chmod(smi, 0o755);
    const modulePath = join(import.meta.dir, "../../src/node/resources.ts");
    const code = `
      const { sampleResources } = await import(${JSON.stringify(modulePath)});
      const facts = { version: "v", capabilities: [], slots: 1, voter: false, nat: false, dataDir: ${JSON.stringify(binDir)} };
      const info = await sampleResources(facts);
      console.log(JSON.stringify(info.gpus));
    `;
    const proc = Bun.spawn([process.execPath, "-e", code], {
      env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ""}` },
      stdout: "pipe",
      stderr: "inherit",
    });
    const [out, exit] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(exit).toBe(0);
    return JSON.parse(out);
  }

  test("parses nvidia-smi output", async () => {
    const gpus = await sampleInChild(`printf 'NVIDIA H100 80GB HBM3, 81559, 1024, 37\\n'`);
    expect(gpus).toEqual([
      { name: "NVIDIA H100 80GB HBM3", memoryTotalMb: 81559, memoryUsedMb: 1024, utilizationPct: 37 },
    ]);
  });

  test("a failing nvidia-smi yields no GPUs", async () => {
    expect(await sampleInChild("echo 'NVIDIA-SMI has failed'; exit 9")).toEqual([]);
  });
});
