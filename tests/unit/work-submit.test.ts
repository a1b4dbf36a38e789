import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { jobTemplateSchema } from "../../src/config/schema.ts";
import { kvSet, kvSetPayload } from "../../src/consensus/kv.ts";
import type { ConsensusRuntime } from "../../src/consensus/runtime.ts";
import { type Db, openDb } from "../../src/db/client.ts";
import { reportBodySchema } from "../../src/net/route-table.ts";
import type { NodeInfo } from "../../src/shared/node-info.ts";
import { readItem, WORK_COMMANDS } from "../../src/work/commands.ts";
import { type WorkItemInput, workItemInputSchema } from "../../src/work/model.ts";
import { type NodeView, WorkError, WorkService } from "../../src/work/service.ts";
import { parseResult } from "../../src/work/worker.ts";
import { startSingleVoter } from "./single-voter.ts";

/**
 * The queue's door, on a real single-voter runtime and database: what a submission or a report is
 * refused for, and what reaches the log. The membership view is the input these rules read, so each
 * test says which nodes are live and what they have.
 */

const GIB = 1024 ** 3;

const cpuNode = (over: Partial<NodeInfo> = {}): NodeInfo => ({
  version: "test",
  capabilities: ["selfplay", "training"],
  slots: 4,
  voter: true,
  nat: false,
  cpu: { count: 8, load1: 0 },
  memory: { totalBytes: 32 * GIB, freeBytes: 16 * GIB },
  disk: { totalBytes: 500 * GIB, freeBytes: 200 * GIB },
  gpus: [],
  sampledAt: 0,
  ...over,
});

let dir: string;
let db: Db;
let runtime: ConsensusRuntime;
let nodes: NodeView[];
let work: WorkService;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "p2p-work-submit-"));
  db = openDb(dir);
  runtime = await startSingleVoter(db, [kvSet, ...WORK_COMMANDS]);
  nodes = [
    { id: "n1", alive: true, info: cpuNode() },
    { id: "n2", alive: true, info: cpuNode({ capabilities: ["selfplay"] }) },
  ];
  work = new WorkService({
    consensus: runtime,
    db,
    jobs: {
      selfplay: v.parse(jobTemplateSchema, { command: ["true"] }),
      training: v.parse(jobTemplateSchema, { command: ["true"], requires: { memory_gb: 24 } }),
      match: v.parse(jobTemplateSchema, { command: ["echo", "{games}"] }),
    },
    nodes: () => nodes,
    leaseMs: 10_000,
    limits: { soft: 100, hard: 200 },
  });
});

afterEach(() => {
  runtime.stop();
  db.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

const input = (over: Record<string, unknown> = {}): WorkItemInput =>
  v.parse(workItemInputSchema, { type: "selfplay", ...over });

async function refusal(submission: Promise<unknown>): Promise<WorkError> {
  const e = await submission.then(
    () => null,
    (err: unknown) => err,
  );
  if (!(e instanceof WorkError)) throw new Error(`expected a WorkError, got ${String(e)}`);
  return e;
}

describe("a submission retried with its id adds one item", () => {
  test("the same id and content twice: one item, one log entry, the second answered as existing", async () => {
    const first = await work.submit([input({ id: "job-1", config: { games: 3 } })]);
    expect(first).toMatchObject({ added: ["job-1"], existing: [] });
    const entries = runtime.raft.lastIndex;
    const again = await work.submit([input({ id: "job-1", config: { games: 3 } })]);
    expect(again).toMatchObject({ added: [], existing: ["job-1"] });
    expect(runtime.raft.lastIndex).toBe(entries);
    expect(work.list({ limit: 10 }).map((i) => i.id)).toEqual(["job-1"]);
  });

  test("the same id with other content is a 409 naming the id and the fields, and nothing changes", async () => {
    await work.submit([input({ id: "job-1", config: { games: 3 } })]);
    const e = await refusal(work.submit([input({ id: "job-1", config: { games: 4 }, priority: 9 })]));
    expect(e.status).toBe(409);
    expect(e.message).toContain('"job-1" (priority, config)');
    expect(e.about.item).toEqual({ index: 0, field: "id" });
    expect(readItem(db, "job-1")).toMatchObject({ priority: 50, config: { games: 3 } });
  });

  test("a batch with one conflicting id adds none of its items", async () => {
    await work.submit([input({ id: "a" })]);
    const e = await refusal(work.submit([input({ id: "b" }), input({ id: "a", priority: 1 })]));
    expect(e.status).toBe(409);
    expect(readItem(db, "b")).toBeUndefined();
  });
});

describe("a config that cannot fill its template is refused at submission, not dead-lettered later", () => {
  test("a placeholder the config lacks, or an object where argv needs a plain value, names config", async () => {
    nodes[0]?.info?.capabilities.push("match");
    const missing = await refusal(work.submit([input({ type: "match" })]));
    expect(missing.status).toBe(422);
    expect(missing.about.item).toEqual({ index: 0, field: "config" });
    expect(missing.message).toContain('needs "games"');
    const object = await refusal(work.submit([input({ type: "match", config: { games: { n: 3 } } })]));
    expect(object.message).toContain("config.games stands in the job's argv");
    const nul = await refusal(work.submit([input({ config: { note: "a\u0000b" } })]));
    expect(nul.message).toBe("config.note: expected no NUL character");
    expect(work.list({ limit: 10 })).toEqual([]);
    expect((await work.submit([input({ type: "match", config: { games: 3 } })])).added).toHaveLength(1);
  });
});

describe("requirements no live node can meet are refused at submission, saying why", () => {
  test("gpu: true on a cluster without GPUs", async () => {
    const e = await refusal(work.submit([input({ requirements: { gpu: true } })]));
    expect(e.status).toBe(422);
    expect(e.message).toBe("no live node can ever run the item: n1: no GPU; n2: no GPU");
    expect(work.list({ limit: 10 })).toEqual([]);
  });

  test("more disk or memory than any node has, in the item or in its type's template", async () => {
    const disk = await refusal(work.submit([input({ requirements: { diskGb: 900 } })]));
    expect(disk.message).toContain("n1: needs 900 GB disk, has 500.0 GB");
    const memory = await refusal(work.submit([input({ requirements: { memoryGb: 64 } })]));
    expect(memory.message).toContain("n2: needs 64 GB memory, has 32.0 GB");
    nodes = [{ id: "n1", alive: true, info: cpuNode({ memory: { totalBytes: 16 * GIB, freeBytes: 8 * GIB } }) }];
    const template = await refusal(work.submit([input({ type: "training" })]));
    expect(template.message).toBe("no live node can ever run the item: n1: needs 24 GB memory, has 16.0 GB");
  });

  test("in a batch, the refusal names the item; a node that has what it needs lets it in", async () => {
    const e = await refusal(work.submit([input(), input({ requirements: { gpu: true } })]));
    expect(e.about.item).toEqual({ index: 1, field: "requirements" });
    const gpu = { name: "H100", memoryTotalMb: 81_559, memoryUsedMb: 0, utilizationPct: 0 };
    nodes.push({ id: "n3", alive: true, info: cpuNode({ gpus: [gpu] }) });
    expect((await work.submit([input({ requirements: { gpu: true, gpuMemoryGb: 40 } })])).added).toHaveLength(1);
  });

  test("only live nodes count, and a live node whose resources are not known yet may fit", async () => {
    const gpu = { name: "H100", memoryTotalMb: 81_559, memoryUsedMb: 0, utilizationPct: 0 };
    nodes.push({ id: "n3", alive: false, info: cpuNode({ gpus: [gpu] }) });
    expect((await refusal(work.submit([input({ requirements: { gpu: true } })]))).message).not.toContain("n3");
    nodes.push({ id: "n4", alive: true, info: null });
    expect((await work.submit([input({ requirements: { gpu: true } })])).added).toHaveLength(1);
  });

  test("numbers beyond any machine are refused by the schema, naming the field", () => {
    for (const [field, value] of [
      ["diskGb", 1e308],
      ["memoryGb", 1e6],
      ["gpuMemoryGb", 1e5],
      ["diskGb", -1],
    ] as const) {
      const parsed = v.safeParse(workItemInputSchema, { type: "selfplay", requirements: { [field]: value } });
      expect(parsed.success).toBe(false);
      expect(parsed.issues?.[0]?.path?.map((p) => p.key)).toEqual(["requirements", field]);
    }
    const timeout = v.safeParse(workItemInputSchema, { type: "selfplay", timeout: "40d" });
    expect(timeout.issues?.[0]).toMatchObject({ message: "a duration of at most 30 days", path: [{ key: "timeout" }] });
    const huge = v.safeParse(workItemInputSchema, { type: "selfplay", timeout: 1e308 });
    expect(huge.issues?.[0]?.path?.map((p) => p.key)).toEqual(["timeout"]);
  });
});

/** `{"a":{"a":...{}}}`, `levels` objects deep, built without recursion. */
function nested(levels: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let at = root;
  for (let i = 1; i < levels; i++) {
    const next: Record<string, unknown> = {};
    at.a = next;
    at = next;
  }
  return root;
}

describe("free-form fields are bounded in depth and size", () => {
  test("a config nested 100,000 deep fails on config, without a stack overflow", () => {
    const parsed = v.safeParse(workItemInputSchema, { type: "selfplay", config: nested(100_000) });
    expect(parsed.success).toBe(false);
    const issue = parsed.issues?.[0];
    expect(issue?.path?.map((p) => p.key)).toEqual(["config"]);
    expect(issue?.message).toBe("JSON nested at most 32 levels deep");
  });

  test("32 levels pass, 33 do not; a config over 64 KiB fails naming the size", () => {
    expect(v.safeParse(workItemInputSchema, { type: "selfplay", config: nested(32) }).success).toBe(true);
    expect(v.safeParse(workItemInputSchema, { type: "selfplay", config: nested(33) }).success).toBe(false);
    const big = v.safeParse(workItemInputSchema, { type: "selfplay", config: { s: "x".repeat(70_000) } });
    expect(big.issues?.[0]).toMatchObject({ message: "at most 65536 bytes of JSON", received: "70008 bytes" });
  });

  test("a result or progress nested 100,000 deep, and a kv value, fail on their field", () => {
    for (const field of ["result", "progress"]) {
      const parsed = v.safeParse(reportBodySchema, { leaseId: "1.1.1", [field]: [nested(100_000)] });
      expect(parsed.issues?.[0]?.path?.map((p) => p.key)).toEqual([field]);
    }
    const kv = v.safeParse(kvSetPayload, { key: "k", value: nested(100_000) });
    expect(kv.issues?.[0]?.path?.map((p) => p.key)).toEqual(["value"]);
  });

  test("a job whose result line is too deep reports it as text, not a result the leader refuses forever", () => {
    const line = `${"[".repeat(40)}${"]".repeat(40)}`;
    expect(parseResult(line)).toEqual({ result: { output: line } });
    expect(parseResult('{"games": 3}')).toEqual({ result: { games: 3 } });
  });
});

describe("a peer report for an item that does not exist", () => {
  test("is refused by the leader before it is proposed", async () => {
    const entries = runtime.raft.lastIndex;
    const outcome = await work.report("no-such-item", "complete", { leaseId: "1.1.1", node: "n2", result: 1 });
    expect(outcome).toEqual({ ok: false, status: 404, reason: 'no work item "no-such-item"' });
    expect(runtime.raft.lastIndex).toBe(entries);
  });
});

describe("pruning finished items", () => {
  test("the leader proposes a prune only when an item is past keep_finished and an hour old; then it goes", async () => {
    let now = 1_000_000;
    const pruning = new WorkService({
      consensus: runtime,
      db,
      jobs: { selfplay: v.parse(jobTemplateSchema, { command: ["true"] }) },
      nodes: () => nodes,
      leaseMs: 10_000,
      limits: { soft: 100, hard: 200 },
      keepFinished: 1,
      now: () => now,
    });
    for (const id of ["a", "b", "c"]) {
      await pruning.submit([input({ id })]);
      await pruning.cancel(id, "done with it");
    }
    const entries = runtime.raft.lastIndex;
    await pruning.tickIfDue();
    // Three finished, one kept, but none an hour old: no entry at all, rather than one that prunes nothing.
    expect(runtime.raft.lastIndex).toBe(entries);
    expect(["a", "b", "c"].map((id) => readItem(db, id)?.state)).toEqual(["cancelled", "cancelled", "cancelled"]);
    now += 2 * 3_600_000;
    await pruning.tickIfDue();
    expect(runtime.raft.lastIndex).toBeGreaterThan(entries);
    expect(["a", "b", "c"].map((id) => readItem(db, id)?.state)).toEqual([undefined, undefined, "cancelled"]);
  });
});
