import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type SnapshotFrom, transition } from "xstate";
import { type Db, openDb } from "../../src/db/client.ts";
import { TraceStore } from "../../src/db/traces.ts";
import {
  type JobContext,
  type JobEvent,
  type JobState,
  jobLifecycleMachine,
  nextJob,
} from "../../src/machines/job-lifecycle.ts";
import {
  type Claim,
  finishedCount,
  type ReportOutcome,
  readItem,
  workAdd,
  workCancel,
  workClaim,
  workClaimBatch,
  workPrune,
  workReport,
  workReportBatch,
  workTick,
} from "../../src/work/commands.ts";
import type { NormalizedItem, Offer } from "../../src/work/model.ts";
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
  requirements: { capabilities: [], gpu: false, gpuMemoryGb: 0, diskGb: 0, memoryGb: 0, excludeNodes: [] },
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
    expect(add(item("a"), item("b"))).toEqual({ added: ["a", "b"], existing: [], conflicts: [] });
    expect(add(item("a"))).toEqual({ added: [], existing: ["a"], conflicts: [] });
    expect(readItem(db, "a")?.state).toBe("pending");
  });

  test("the same id with other content is a conflict naming the fields, and changes nothing", () => {
    add(item("a", { config: { x: 1, y: [1, { p: 1, q: 2 }] } }));
    // The same content with its keys in another order is the same item.
    expect(add(item("a", { config: { y: [1, { q: 2, p: 1 }], x: 1 } }))).toEqual({
      added: [],
      existing: ["a"],
      conflicts: [],
    });
    expect(add(item("a", { priority: 7, config: { x: 2 } }), item("c"), item("c", { maxAttempts: 5 }))).toEqual({
      added: ["c"],
      existing: [],
      conflicts: [
        { id: "a", fields: ["priority", "config"] },
        { id: "c", fields: ["maxAttempts"] },
      ],
    });
    expect(readItem(db, "a")).toMatchObject({ priority: 50, config: { x: 1 } });
    expect(readItem(db, "c")?.context.maxAttempts).toBe(2);
  });

  test("a start or heartbeat sent again after its answer was lost is a duplicate, not a stale lease", () => {
    add(item("a"));
    const [c] = claim();
    expect(report("a", c?.leaseId as string, "start")).toEqual({ ok: true, state: "running", duplicate: false });
    expect(report("a", c?.leaseId as string, "start")).toEqual({ ok: true, state: "running", duplicate: true });
    const beat = (now: number) =>
      workReportBatch.apply(
        db,
        {
          reports: [0, 1].map(() => ({
            id: "a",
            leaseId: c?.leaseId as string,
            node: "w1",
            kind: "heartbeat" as const,
          })),
          now,
          leaseMs: 10_000,
        },
        ctx(),
      );
    expect(beat(4_000)).toEqual([
      { ok: true, state: "running", duplicate: false },
      { ok: true, state: "running", duplicate: true },
    ]);
    expect(report("a", "9.9.9", "start")).toMatchObject({ ok: false, status: 409 });
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
    expect(workTick.apply(db, { now: 11_999 }, ctx())).toEqual({ expired: 0, retried: 0, timedOut: 0 });
    expect(workTick.apply(db, { now: 12_000 }, ctx())).toEqual({ expired: 1, retried: 0, timedOut: 0 });
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
    expect(workTick.apply(db, { now: 7_999 }, ctx())).toEqual({ expired: 0, retried: 0, timedOut: 0 });
    expect(workTick.apply(db, { now: 8_000 }, ctx())).toEqual({ expired: 0, retried: 1, timedOut: 0 });
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

describe("the leader's backstop for an attempt held past its timeout", () => {
  test("a worker renewing its lease past the item's timeout plus grace has its attempt failed", () => {
    add(item("a", { timeoutMs: 60_000, maxAttempts: 2 }));
    const [c] = claim(offer(), 10, 2_000);
    const lease = c?.leaseId as string;
    const renew = (now: number) =>
      workReport.apply(db, { id: "a", leaseId: lease, node: "w1", kind: "heartbeat", now, leaseMs: 10_000 }, ctx());
    renew(55_000);
    renew(64_000);
    const tick = (now: number, graceMs?: number) => workTick.apply(db, { now, limit: 100, graceMs }, ctx());
    expect(tick(67_000)).toEqual({ expired: 0, retried: 0, timedOut: 0 }); // entries without a grace never time out
    expect(tick(66_999, 5_000)).toEqual({ expired: 0, retried: 0, timedOut: 0 });
    expect(tick(67_000, 5_000)).toEqual({ expired: 0, retried: 0, timedOut: 1 });
    const after = readItem(db, "a");
    expect(after?.state).toBe("retry-wait");
    expect(after?.context.error).toContain("timed out: held by w1 for 65000 ms, past its 60000 ms timeout");
    expect(report("a", lease, "heartbeat", 67_001)).toMatchObject({ ok: false, status: 409 });
  });
});

describe("ticks are bounded", () => {
  test("at most `limit` items move per tick, the next tick moves the rest", () => {
    add(...Array.from({ length: 5 }, (_, i) => item(`i${i}`, { maxAttempts: 3 })));
    claim(offer({ freeSlots: 5 }), 5, 2_000);
    expect(workTick.apply(db, { now: 20_000, limit: 3 }, ctx())).toEqual({ expired: 3, retried: 0, timedOut: 0 });
    expect(workTick.apply(db, { now: 20_000, limit: 3 }, ctx())).toEqual({ expired: 2, retried: 0, timedOut: 0 });
    expect(workTick.apply(db, { now: 20_000, limit: 3 }, ctx())).toEqual({ expired: 0, retried: 0, timedOut: 0 });
  });
});

describe("every transition is in the job machine's trace", () => {
  test("read from the replicated history: the item as instance, the states, the event and the cause", () => {
    const traces = new TraceStore(db);
    traces.record({
      machine: "peer",
      instance: "n2",
      from: "alive",
      to: "suspect",
      event: "timeout",
      cause: null,
      at: 1,
    });
    workAdd.apply(db, { items: [item("a"), item("b")], now: 1_000 }, ctx());
    const [claims] = workClaimBatch.apply(
      db,
      { claims: [{ offer: offer(), max: 1 }], now: 2_000, leaseMs: 10_000 },
      ctx(),
    ) as Claim[][];
    const lease = claims?.[0]?.leaseId as string;
    workReport.apply(
      db,
      { id: "a", leaseId: "0.0.0", node: "w1", kind: "complete", now: 3_000, leaseMs: 10_000 },
      ctx(),
    );
    workReport.apply(db, { id: "a", leaseId: lease, node: "w1", kind: "complete", now: 3_000, leaseMs: 10_000 }, ctx());
    const rows = traces.query({ machine: "job", instance: "a" });
    expect(rows.map(({ seq: _, ...r }) => r)).toEqual([
      { machine: "job", instance: "a", from: null, to: "pending", event: "submit", cause: "submitted", at: 1_000 },
      {
        machine: "job",
        instance: "a",
        from: "pending",
        to: "claimed",
        event: "claim",
        cause: `claimed by w1 (lease ${lease})`,
        at: 2_000,
      },
      {
        machine: "job",
        instance: "a",
        from: "claimed",
        to: "completed",
        event: "complete",
        cause: `complete from w1 (lease ${lease})`,
        at: 3_000,
      },
    ]);
    // The follow cursor and the limit work as for any machine; the other machines' rows stay apart.
    const all = traces.query({ machine: "job" });
    expect(all.map((r) => `${r.instance}:${r.to}`)).toEqual(["a:pending", "b:pending", "a:claimed", "a:completed"]);
    expect(traces.query({ machine: "job", after: (all[1] as { seq: number }).seq, limit: 1 }).map((r) => r.to)).toEqual(
      ["claimed"],
    );
    expect(traces.query({ machine: "job", limit: 1 }).map((r) => r.to)).toEqual(["completed"]);
    expect(traces.query({}).map((r) => r.machine)).toEqual(["peer"]);
  });
});

describe("pruning finished items", () => {
  test("the oldest finished items beyond `keep` go with their history, never one finished after `before`", () => {
    add(item("a"), item("b"), item("c"), item("d"), item("e"));
    const claims = claim(offer(), 10, 2_000);
    for (const [i, c] of claims.slice(0, 4).entries()) {
      workReport.apply(
        db,
        { id: c.id, leaseId: c.leaseId, node: "w1", kind: "complete", now: 3_000 + i, leaseMs: 10_000 },
        ctx(),
      );
    }
    expect(finishedCount(db)).toBe(4);
    // Keep 1: three may go, but only those finished before 3_002.
    expect(workPrune.apply(db, { keep: 1, before: 3_002, limit: 100 }, ctx())).toEqual({ pruned: 2 });
    const left = claims.map((c) => c.id).filter((id) => readItem(db, id) !== undefined);
    expect(left).toEqual(claims.slice(2).map((c) => c.id));
    expect(
      db.$client
        .prepare("SELECT count(*) AS n FROM work_history WHERE item_id IN (?, ?)")
        .get(claims[0]?.id ?? "", claims[1]?.id ?? ""),
    ).toEqual({ n: 0 });
    // Unfinished items are never pruned, and nothing goes while at most `keep` are finished.
    expect(workPrune.apply(db, { keep: 0, before: 10_000, limit: 100 }, ctx())).toEqual({ pruned: 2 });
    expect(workPrune.apply(db, { keep: 0, before: 10_000, limit: 100 }, ctx())).toEqual({ pruned: 0 });
    expect(readItem(db, "e")?.state).toBe("pending");
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

describe("claims and reports grouped into one entry", () => {
  const claimBatch = (claims: { offer: Offer; max: number; claimId?: string; retry?: boolean }[], now = 2_000) =>
    workClaimBatch.apply(db, { claims, now, leaseMs: 10_000 }, ctx()) as Claim[][];

  test("each claim gets its own items, in claim order, and no item goes to two claims", () => {
    add(item("a"), item("b"), item("c"), item("gpu", { requirements: { ...item("x").requirements, gpu: true } }));
    const got = claimBatch([
      { offer: offer({ node: "w1", freeSlots: 1 }), max: 1 },
      { offer: offer({ node: "w2" }), max: 2 },
      { offer: offer({ node: "w3", gpus: 1 }), max: 1 },
    ]);
    expect(got.map((cs) => cs.map((c) => c.id))).toEqual([["a"], ["b", "c"], ["gpu"]]);
    const leases = got.flat().map((c) => c.leaseId);
    expect(new Set(leases).size).toBe(4);
    expect(readItem(db, "gpu")?.context.leaseNode).toBe("w3");
    expect(claimBatch([{ offer: offer(), max: 4 }])).toEqual([[]]);
  });

  test("claims offering different types walk one queue and still take only their own types", () => {
    add(item("s1"), item("t1", { type: "training" }), item("s2"), item("t2", { type: "training" }));
    const got = claimBatch([
      { offer: offer({ node: "w1", types: ["training"] }), max: 4 },
      { offer: offer({ node: "w2", types: ["selfplay"] }), max: 1 },
      { offer: offer({ node: "w3" }), max: 4 },
    ]);
    expect(got.map((cs) => cs.map((c) => c.id))).toEqual([["t1", "t2"], ["s1"], ["s2"]]);
  });

  test("a page of items taken by earlier claims does not hide the ones after it", () => {
    add(...Array.from({ length: 40 }, (_, i) => item(`i${String(i).padStart(2, "0")}`)));
    const claims = Array.from({ length: 20 }, (_, k) => ({ offer: offer({ node: `w${k}`, freeSlots: 2 }), max: 2 }));
    const got = claimBatch(claims).flat();
    expect(got.map((c) => c.id)).toEqual(Array.from({ length: 40 }, (_, i) => `i${String(i).padStart(2, "0")}`));
  });

  test("a retried claim in a batch gets its earlier leases back", () => {
    add(item("a"), item("b"));
    const [first] = claimBatch([{ offer: offer({ freeSlots: 1 }), max: 1, claimId: "c-1" }]);
    const [again, other] = claimBatch([
      { offer: offer({ freeSlots: 1 }), max: 1, claimId: "c-1", retry: true },
      { offer: offer({ node: "w2", freeSlots: 1 }), max: 1 },
    ]);
    expect(again).toEqual(first as Claim[]);
    expect(other?.map((c) => c.id)).toEqual(["b"]);
  });

  test("each report gets its own outcome, fenced by its lease, a repeat in the same entry a duplicate", () => {
    add(item("a"), item("b"));
    const [claims] = claimBatch([{ offer: offer(), max: 2 }]);
    const [a, b] = claims as Claim[];
    const outcomes = workReportBatch.apply(
      db,
      {
        reports: [
          { id: "a", leaseId: a?.leaseId as string, node: "w1", kind: "complete", result: 1 },
          { id: "b", leaseId: "9.9.9", node: "w1", kind: "complete" },
          { id: "a", leaseId: a?.leaseId as string, node: "w1", kind: "complete", result: 1 },
          { id: "b", leaseId: b?.leaseId as string, node: "w1", kind: "start" },
          { id: "zz", leaseId: "1.1.1", node: "w1", kind: "heartbeat" },
        ],
        now: 3_000,
        leaseMs: 10_000,
      },
      ctx(),
    ) as ReportOutcome[];
    expect(outcomes).toEqual([
      { ok: true, state: "completed", duplicate: false },
      expect.objectContaining({ ok: false, status: 409 }),
      { ok: true, state: "completed", duplicate: true },
      { ok: true, state: "running", duplicate: false },
      expect.objectContaining({ ok: false, status: 404 }),
    ]);
  });
});

describe("the job lifecycle's transition table", () => {
  test("answers exactly as the xstate machine does, for every state, event and kind of context", () => {
    const states = Object.keys(jobLifecycleMachine.root.states) as JobState[];
    const base: JobContext = {
      attempts: 1,
      maxAttempts: 3,
      leaseId: "L1",
      leaseNode: "w1",
      leaseExpiresAt: 1_000,
      notBefore: null,
      result: null,
      error: null,
      finishedLeaseId: null,
      claimId: "c",
      claimedAt: 900,
    };
    const unleased = { leaseId: null, leaseNode: null, leaseExpiresAt: null, claimedAt: null };
    const { claimedAt: _, ...stored } = base; // as stored before contexts had `claimedAt`
    const contexts: JobContext[] = [stored];
    for (const attempts of [0, 1, 3])
      for (const leased of [true, false])
        for (const notBefore of [null, 500])
          contexts.push({ ...base, attempts, notBefore, ...(leased ? {} : unleased) });
    const events: JobEvent[] = [{ type: "cancel", reason: "r" }];
    for (const leaseId of ["L1", "L2"]) {
      events.push(
        { type: "claim", node: "w2", leaseId, expiresAt: 5_000, claimId: null, at: 4_000 },
        { type: "start", leaseId, expiresAt: 6_000 },
        { type: "heartbeat", leaseId, expiresAt: 7_000 },
        { type: "complete", leaseId, result: { ok: 1 } },
        { type: "fail", leaseId, error: "boom", retryAt: 800 },
      );
    }
    for (const now of [999, 1_000, 2_000]) events.push({ type: "lease-expired", now });
    for (const now of [400, 500, 600]) events.push({ type: "retry-due", now });
    let compared = 0;
    for (const state of states)
      for (const context of contexts)
        for (const event of events) {
          const snapshot = jobLifecycleMachine.resolveState({ value: state, context });
          const [next] = transition(jobLifecycleMachine, snapshot as SnapshotFrom<typeof jobLifecycleMachine>, event);
          const where = `${state} ${JSON.stringify(context)} ${JSON.stringify(event)}`;
          // Compared as JSON: the stored context must be the same text, key order included.
          expect(`${where} ${JSON.stringify(nextJob(state, context, event))}`).toBe(
            `${where} ${JSON.stringify({ state: next.value, context: next.context })}`,
          );
          compared++;
        }
    expect(compared).toBe(states.length * contexts.length * events.length);
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
          memoryGb: 64,
          node: { id: "w9" },
          excludeNodes: ["w1"],
        },
      },
      offer({ types: ["selfplay"], freeSlots: 0, freeMemoryGb: 8 }),
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
      "needs 64 GB memory, 8.0 GB free",
      "busy: needs 1 slot(s), 0 free",
    ]);
  });

  test("a target node stops binding once its expiry passes", () => {
    const r = { ...item("x").requirements, node: { id: "w9", until: 100 } };
    expect(misfits({ type: "selfplay", requirements: r }, offer(), 50)).toEqual(["targets node w9"]);
    expect(misfits({ type: "selfplay", requirements: r }, offer(), 100)).toEqual([]);
  });

  test("an item that prefers a GPU waits for one until its deadline, then any node takes it", () => {
    const r = { ...item("x").requirements, preferGpuUntil: 10_000 };
    expect(misfits({ type: "selfplay", requirements: r }, offer(), 1_000)).toEqual([
      "held for a node with a GPU for 9 s more",
    ]);
    expect(misfits({ type: "selfplay", requirements: r }, offer({ gpus: 1 }), 1_000)).toEqual([]);
    expect(misfits({ type: "selfplay", requirements: r }, offer(), 10_000)).toEqual([]);
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
