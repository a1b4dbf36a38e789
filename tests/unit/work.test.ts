import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Db, openDb } from "../../src/db/client.ts";
import {
  type Claim,
  type NormalizedItem,
  type ReportOutcome,
  readItem,
  workAdd,
  workCancel,
  workClaim,
  workReport,
  workTick,
} from "../../src/work/commands.ts";
import type { Offer } from "../../src/work/model.ts";
import { misfits } from "../../src/work/placement.ts";

let dir: string;
let db: Db;
let index = 0;
const ctx = () => ({ index: ++index, term: 3 });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "p2p-work-"));
  db = openDb(dir);
});
afterEach(() => {
  db.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

const item = (id: string, over: Partial<NormalizedItem> = {}): NormalizedItem => ({
  id,
  type: "selfplay",
  priority: 50,
  config: {},
  requirements: { capabilities: [], gpu: false, gpuMemoryGb: 0, diskGb: 0, excludeNodes: [] },
  dependsOn: [],
  maxAttempts: 2,
  timeoutMs: 60_000,
  ...over,
});

const offer = (over: Partial<Offer> = {}): Offer => ({
  node: "w1",
  types: ["selfplay", "training"],
  capabilities: ["selfplay"],
  freeSlots: 4,
  gpus: 0,
  freeGpuMemoryGb: 0,
  freeDiskGb: 100,
  slotsPerType: {},
  ...over,
});

const add = (...items: NormalizedItem[]) => workAdd.apply(db, { items, now: 1_000 }, ctx());
const claim = (o: Offer = offer(), max = 10, now = 2_000) =>
  workClaim.apply(db, { offer: o, max, now, leaseMs: 10_000 }, ctx()) as Claim[];
const report = (id: string, leaseId: string, kind: "start" | "heartbeat" | "complete" | "fail", now = 3_000) =>
  workReport.apply(
    db,
    { id, leaseId, node: "w1", kind, result: { ok: 1 }, error: "boom", retryAt: now + 5_000, now, leaseMs: 10_000 },
    ctx(),
  ) as ReportOutcome;

describe("work queue commands (applied as the replicated state machine applies them)", () => {
  test("adding is idempotent by id", () => {
    expect(add(item("a"), item("b"))).toEqual({ added: ["a", "b"], existing: [] });
    expect(add(item("a"))).toEqual({ added: [], existing: ["a"] });
    expect(readItem(db, "a")?.state).toBe("pending");
  });

  test("claims go by priority, then submission order, within the node's free slots", () => {
    add(item("low", { priority: 10 }), item("high", { priority: 90 }), item("mid1"), item("mid2"));
    const got = claim(offer({ freeSlots: 3 }));
    expect(got.map((c) => c.id)).toEqual(["high", "mid1", "mid2"]);
    expect(got[0]?.leaseId).toMatch(/^3\./);
    expect(readItem(db, "high")?.state).toBe("claimed");
    expect(readItem(db, "low")?.state).toBe("pending");
  });

  test("a claim takes only what fits, and dependencies wait for completion", () => {
    add(
      item("gpu", { requirements: { ...item("x").requirements, gpu: true } }),
      item("other-type", { type: "export" }),
      item("parent"),
      item("child", { dependsOn: ["parent"] }),
    );
    const first = claim();
    expect(first.map((c) => c.id)).toEqual(["parent"]);
    const lease = first[0]?.leaseId as string;
    expect(report("parent", lease, "complete").ok).toBe(true);
    expect(claim().map((c) => c.id)).toEqual(["child"]);
  });

  test("complete is idempotent; a stale lease is refused with 409 and changes nothing", () => {
    add(item("a"));
    const [c] = claim();
    const lease = c?.leaseId as string;
    expect(report("a", lease, "start")).toEqual({ ok: true, state: "running", duplicate: false });
    expect(report("a", "1.1.0", "complete")).toMatchObject({ ok: false, status: 409 });
    expect(readItem(db, "a")?.state).toBe("running");
    expect(report("a", lease, "complete")).toEqual({ ok: true, state: "completed", duplicate: false });
    expect(report("a", lease, "complete")).toEqual({ ok: true, state: "completed", duplicate: true });
    expect(readItem(db, "a")?.context.result).toEqual({ ok: 1 });
  });

  test("an expired lease returns the item with one attempt used, then dead-letters it", () => {
    add(item("a", { maxAttempts: 2 }));
    const [first] = claim(offer(), 10, 2_000);
    expect(workTick.apply(db, { now: 11_999 }, ctx())).toEqual({ expired: 0, retried: 0 });
    expect(workTick.apply(db, { now: 12_000 }, ctx())).toEqual({ expired: 1, retried: 0 });
    expect(readItem(db, "a")?.state).toBe("pending");
    expect(report("a", first?.leaseId as string, "complete")).toMatchObject({ ok: false, status: 409 });
    claim(offer(), 10, 13_000);
    workTick.apply(db, { now: 30_000 }, ctx());
    expect(readItem(db, "a")?.state).toBe("dead-lettered");
  });

  test("a failure waits out its backoff, then returns to the queue", () => {
    add(item("a", { maxAttempts: 3 }));
    const [c] = claim();
    expect(report("a", c?.leaseId as string, "fail", 3_000)).toEqual({
      ok: true,
      state: "retry-wait",
      duplicate: false,
    });
    expect(report("a", c?.leaseId as string, "fail", 3_000)).toMatchObject({ ok: true, duplicate: true });
    expect(workTick.apply(db, { now: 7_999 }, ctx())).toEqual({ expired: 0, retried: 0 });
    expect(workTick.apply(db, { now: 8_000 }, ctx())).toEqual({ expired: 0, retried: 1 });
    expect(readItem(db, "a")?.state).toBe("pending");
  });

  test("cancel ends a pending or claimed item, but not a completed one", () => {
    add(item("a"), item("b"));
    const [c] = claim(offer({ freeSlots: 1 }));
    report(c?.id as string, c?.leaseId as string, "complete");
    expect(workCancel.apply(db, { id: "b", reason: "operator", now: 5 }, ctx())).toMatchObject({ ok: true });
    expect(workCancel.apply(db, { id: "a", reason: "operator", now: 5 }, ctx())).toMatchObject({
      ok: false,
      status: 409,
    });
    expect(workCancel.apply(db, { id: "zz", reason: "operator", now: 5 }, ctx())).toMatchObject({ status: 404 });
  });
});

describe("a claim whose answer was lost", () => {
  test("sent again with its id, it returns the same leases and claims nothing new", () => {
    add(item("a"), item("b"), item("c"));
    const payload = (retry: boolean) => ({
      offer: offer({ freeSlots: 2 }),
      max: 2,
      now: 2_000,
      leaseMs: 10_000,
      claimId: "c-1",
      retry,
    });
    const first = workClaim.apply(db, payload(false), ctx()) as Claim[];
    const again = workClaim.apply(db, payload(true), ctx()) as Claim[];
    expect(first.map((c) => c.id)).toEqual(["a", "b"]);
    expect(again).toEqual(first);
    expect(readItem(db, "c")?.state).toBe("pending");
    const fresh = workClaim.apply(db, { ...payload(true), claimId: "c-2" }, ctx()) as Claim[];
    expect(fresh.map((c) => c.id)).toEqual(["c"]);
  });
});

describe("claims never stall behind items that cannot run", () => {
  test("many higher-priority items waiting on a dependency do not hide the dependency itself", () => {
    const children = Array.from({ length: 40 }, (_, i) => item(`child-${i}`, { priority: 60, dependsOn: ["parent"] }));
    add(...children, item("parent", { priority: 50 }));
    expect(claim(offer({ freeSlots: 1 }), 1).map((c) => c.id)).toEqual(["parent"]);
  });

  test("many higher-priority items no node fits do not hide one that fits", () => {
    const gpuOnly = { ...item("x").requirements, gpu: true };
    const blocked = Array.from({ length: 600 }, (_, i) => item(`gpu-${i}`, { priority: 90, requirements: gpuOnly }));
    add(...blocked, item("cpu", { priority: 10 }));
    expect(claim(offer({ freeSlots: 1 }), 1).map((c) => c.id)).toEqual(["cpu"]);
  });

  test("one claim does not over-commit GPU memory or disk", () => {
    const needs = { ...item("x").requirements, gpu: true, gpuMemoryGb: 20, diskGb: 60 };
    add(item("a", { requirements: needs }), item("b", { requirements: needs }));
    const got = claim(offer({ gpus: 1, freeGpuMemoryGb: 24, freeDiskGb: 100 }));
    expect(got.map((c) => c.id)).toEqual(["a"]);
  });

  test("an item whose dependency is cancelled or dead-lettered ends as well, saying why", () => {
    add(
      item("parent", { maxAttempts: 1 }),
      item("child", { dependsOn: ["parent"] }),
      item("grandchild", { dependsOn: ["child"] }),
    );
    claim(offer({ freeSlots: 1 }), 1, 2_000);
    workTick.apply(db, { now: 20_000 }, ctx());
    expect(readItem(db, "parent")?.state).toBe("dead-lettered");
    expect(readItem(db, "child")?.state).toBe("cancelled");
    expect(readItem(db, "grandchild")?.state).toBe("cancelled");
  });
});

describe("why an item does not fit a node", () => {
  test("each reason is named", () => {
    const reasons = misfits(
      {
        type: "training",
        requirements: {
          capabilities: ["training"],
          gpu: true,
          gpuMemoryGb: 40,
          diskGb: 500,
          node: { id: "w9" },
          excludeNodes: ["w1"],
        },
      },
      offer({ types: ["selfplay"], freeSlots: 0 }),
      0,
    );
    expect(reasons).toEqual([
      'no executor for type "training"',
      "no capability training",
      "excluded by the item",
      "targets node w9",
      "no GPU",
      "needs 40 GB GPU memory, 0.0 GB free",
      "needs 500 GB disk, 100.0 GB free",
      "busy: needs 1 slot(s), 0 free",
    ]);
  });

  test("a target node stops binding once its expiry passes", () => {
    const r = { ...item("x").requirements, node: { id: "w9", until: 100 } };
    expect(misfits({ type: "selfplay", requirements: r }, offer(), 50)).toEqual(["targets node w9"]);
    expect(misfits({ type: "selfplay", requirements: r }, offer(), 100)).toEqual([]);
  });
});

describe("reaping after a restart", () => {
  test("only a process started for that item is recognised as ours", async () => {
    const { startedFor } = await import("../../src/work/worker.ts");
    const child = Bun.spawn(["sleep", "5"], { env: { ...process.env, P2P_WORK_ID: "item-7" } });
    try {
      if (process.platform === "linux") {
        // Until the child has exec'd, /proc shows the parent's environment: wait for it, with a deadline.
        const deadline = Date.now() + 5_000;
        while (!startedFor(child.pid, "item-7") && Date.now() < deadline) await Bun.sleep(5);
        expect(startedFor(child.pid, "item-7")).toBe(true);
      } else {
        expect(startedFor(child.pid, "item-7")).toBe(false);
      }
      expect(startedFor(child.pid, "item-8")).toBe(false);
      expect(startedFor(process.pid, "item-7")).toBe(false);
    } finally {
      child.kill();
      await child.exited;
    }
  });
});
