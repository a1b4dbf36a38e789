import { and, asc, desc, eq, gte, inArray, sql } from "drizzle-orm";
import * as v from "valibot";
import { initialTransition } from "xstate";
import { type ApplyContext, defineCommand } from "../consensus/state-machine.ts";
import type { Db } from "../db/client.ts";
import { workHistory, workItems } from "../db/schema.ts";
import {
  type JobContext,
  type JobEvent,
  type JobState,
  jobLifecycleMachine,
  nextJob,
} from "../machines/job-lifecycle.ts";
import { intIn, timeMsSchema, wireNumberSchema } from "../net/bounds.ts";
import { runItemFinished } from "../runs/item-finished.ts";
import { type NormalizedItem, normalizedItemSchema, offerSchema, type Requirements, type WorkItem } from "./model.ts";
import { misfits } from "./placement.ts";

/**
 * The work queue's replicated commands. Each apply is deterministic: times, ids and backoff jitter
 * are chosen by the leader when it proposes and arrive in the payload.
 */

const now = timeMsSchema;

/** A lease on an item, as a claim answers it to the worker (POST /peer/work/claim). */
export const claimSchema = v.object({
  id: v.string(),
  type: v.string(),
  config: v.record(v.string(), v.unknown()),
  timeoutMs: wireNumberSchema,
  leaseId: v.string(),
  expiresAt: wireNumberSchema,
  term: wireNumberSchema,
  attempt: wireNumberSchema,
});
export type Claim = v.InferOutput<typeof claimSchema>;

export type ReportOutcome =
  | { ok: true; state: JobState; duplicate: boolean }
  | { ok: false; status: 404 | 409; reason: string };

const claimRequestSchema = v.object({
  offer: offerSchema,
  max: wireNumberSchema,
  /** The worker's id for this claim; a retry with the same id (its answer was lost) gets the same leases. */
  claimId: v.optional(v.string()),
  retry: v.optional(v.boolean()),
});

export type ClaimRequest = v.InferOutput<typeof claimRequestSchema>;

const reportKinds = ["start", "heartbeat", "complete", "fail"] as const;

const reportRequestSchema = v.object({
  id: v.string(),
  leaseId: v.string(),
  node: v.string(),
  kind: v.picklist(reportKinds),
  result: v.optional(v.unknown()),
  artifacts: v.optional(v.array(v.string())),
  error: v.optional(v.string()),
  retryAt: v.optional(wireNumberSchema),
});

export type ReportRequest = v.InferOutput<typeof reportRequestSchema>;

function toItem(row: typeof workItems.$inferSelect): WorkItem {
  return row as unknown as WorkItem;
}

/** Statements prepared once per database: the queue applies thousands of commands a second. */
function prepare(db: Db) {
  const p = sql.placeholder;
  const c = db.$client;
  return {
    byId: db
      .select()
      .from(workItems)
      .where(eq(workItems.id, p("id")))
      .prepare(),
    exists: c.prepare("SELECT 1 FROM work_items WHERE id = ?"),
    /** What a finished item's run reads: its config alone, not the whole row mapped. */
    config: c.prepare("SELECT config FROM work_items WHERE id = ?"),
    /** What a transition needs: reports read only this. */
    lifecycle: c.prepare("SELECT id, state, context FROM work_items WHERE id = ?"),
    /**
     * Pending items of the offered types whose dependencies are all completed, in claim order, one page
     * at a time: blocked items never fill the window that runnable ones need.
     */
    runnablePage: c.prepare(`
      SELECT id, type, config, requirements, timeout_ms, state, context FROM work_items wi
      WHERE wi.state = 'pending'
        AND wi.type IN (SELECT value FROM json_each(?1))
        AND (wi.depends_on = '[]' OR NOT EXISTS (
          SELECT 1 FROM json_each(wi.depends_on) d LEFT JOIN work_items dep ON dep.id = d.value
          WHERE dep.state IS NOT 'completed'))
      ORDER BY wi.priority DESC, wi.seq ASC
      LIMIT ?2 OFFSET ?3`),
    anyPending: c.prepare(`
      SELECT 1 FROM work_items wi
      WHERE wi.state = 'pending' AND wi.type IN (SELECT value FROM json_each(?1))
      LIMIT 1`),
    due: c.prepare(`
      SELECT id, timeout_ms FROM work_items wi
      WHERE wi.state IN ('claimed', 'running', 'retry-wait')
        AND CASE wi.state
          WHEN 'retry-wait' THEN coalesce(json_extract(wi.context, '$.notBefore'), 0) <= ?1
          ELSE json_extract(wi.context, '$.leaseExpiresAt') <= ?1
            OR json_extract(wi.context, '$.claimedAt') + wi.timeout_ms + ?2 <= ?1
        END
      ORDER BY wi.state, wi.priority DESC, wi.seq
      LIMIT ?3`),
    dependents: c.prepare(`
      SELECT * FROM work_items wi
      WHERE wi.state IN ('pending', 'retry-wait')
        AND EXISTS (SELECT 1 FROM json_each(wi.depends_on) d WHERE d.value = ?1)`),
    insertItem: c.prepare(`
      INSERT INTO work_items (id, type, priority, config, requirements, depends_on, timeout_ms, state, context,
        created_at, updated_at, seq)
      VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)`),
    insertHistory: c.prepare(
      "INSERT INTO work_history (item_id, from_state, to_state, event, cause, node, term, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    updateItem: c.prepare("UPDATE work_items SET state = ?, context = ?, updated_at = ? WHERE id = ?"),
  };
}

const prepared = new WeakMap<Db, ReturnType<typeof prepare>>();

function q(db: Db): ReturnType<typeof prepare> {
  let statements = prepared.get(db);
  if (!statements) {
    statements = prepare(db);
    prepared.set(db, statements);
  }
  return statements;
}

export function readItem(db: Db, id: string): WorkItem | undefined {
  const row = q(db).byId.get({ id });
  return row ? toItem(row) : undefined;
}

export function itemExists(db: Db, id: string): boolean {
  return q(db).exists.get(id) !== null;
}

/** A row as SQLite returns it (snake_case, JSON as text), as a work item. */
function fromRaw(row: Record<string, unknown>): WorkItem {
  return {
    id: row.id as string,
    type: row.type as string,
    priority: row.priority as number,
    config: JSON.parse(row.config as string),
    requirements: JSON.parse(row.requirements as string),
    dependsOn: JSON.parse(row.depends_on as string),
    timeoutMs: row.timeout_ms as number,
    state: row.state as WorkItem["state"],
    context: JSON.parse(row.context as string),
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number,
    seq: row.seq as number,
  };
}

/** Whether any pending item of these types exists: the cheap test before a claim costs a replicated write. */
export function anyPending(db: Db, types: readonly string[]): boolean {
  return q(db).anyPending.get(JSON.stringify(types)) !== null;
}

/** How many runnable rows one claim may look at in all: a bound on the work one apply can do. */
const CLAIM_SCAN_BOUND = 2_048;

interface RunnableRow {
  id: string;
  type: string;
  config: string;
  requirements: string;
  timeout_ms: number;
  state: JobState;
  context: string;
}

/** Items of a queue share a handful of requirement texts: each is parsed once. */
const parsedRequirements = new Map<string, Requirements>();

function requirementsOf(text: string): Requirements {
  let r = parsedRequirements.get(text);
  if (!r) {
    if (parsedRequirements.size >= 1_024) parsedRequirements.clear();
    r = JSON.parse(text) as Requirements;
    parsedRequirements.set(text, r);
  }
  return r;
}

/**
 * Runnable items of some types in claim order, read a page at a time as the claims of one entry walk
 * them. Items those claims take stop being pending, so the next page starts that many rows earlier.
 */
class RunnableWindow {
  readonly rows: Array<RunnableRow & { taken: boolean }> = [];
  private taken = 0;
  private exhausted = false;

  constructor(
    private readonly db: Db,
    private readonly types: string,
    private readonly pageSize: number,
  ) {}

  at(i: number): (RunnableRow & { taken: boolean }) | undefined {
    while (i >= this.rows.length && !this.exhausted) {
      const page = q(this.db).runnablePage.all(
        this.types,
        this.pageSize,
        this.rows.length - this.taken,
      ) as RunnableRow[];
      for (const row of page) this.rows.push({ ...row, taken: false });
      if (page.length < this.pageSize) this.exhausted = true;
    }
    return this.rows[i];
  }

  take(i: number): void {
    (this.rows[i] as { taken: boolean }).taken = true;
    this.taken++;
  }
}

/**
 * Claims for each request in order, each walking the runnable items from the top (the items an earlier
 * request took are gone), taking what fits its offer until its `max` or its resources run out.
 */
function claimAll(
  db: Db,
  requests: readonly ClaimRequest[],
  p: { now: number; leaseMs: number },
  ctx: ApplyContext,
): Claim[][] {
  // One window over every offered type, so an item one request takes is marked taken for all the others.
  const types = JSON.stringify([...new Set(requests.flatMap((r) => r.offer.types))].sort());
  const wanted = requests.reduce((a, r) => a + r.max, 0);
  // Room for what the claims want and a few misfits: more pages follow only if these run out.
  const window = new RunnableWindow(db, types, Math.min(512, wanted + 16));
  let n = 0;
  return requests.map((request) => {
    const { offer, max } = request;
    const claimId = request.claimId ?? null;
    if (claimId && request.retry) {
      const earlier = workItemsOfNode(db, offer.node).filter((item) => item.context.claimId === claimId);
      if (earlier.length > 0) return earlier.map((item) => claimOf(item, ctx.term));
    }
    const claims: Claim[] = [];
    const free = { ...offer };
    for (let i = 0, looked = 0; claims.length < max && free.freeSlots > 0 && looked < CLAIM_SCAN_BOUND; i++) {
      const row = window.at(i);
      if (!row) break;
      if (row.taken) continue;
      looked++;
      const requirements = requirementsOf(row.requirements);
      if (misfits({ type: row.type, requirements }, free, p.now).length > 0) continue;
      const leaseId = `${ctx.term}.${ctx.index}.${n++}`;
      const item = { id: row.id, state: row.state, context: JSON.parse(row.context) as JobContext };
      const event: JobEvent = {
        type: "claim",
        node: offer.node,
        leaseId,
        expiresAt: p.now + p.leaseMs,
        claimId,
        at: p.now,
      };
      const cause = `claimed by ${offer.node} (lease ${leaseId})`;
      if (!step(db, item, event, { now: p.now, term: ctx.term, cause, node: offer.node })) continue;
      window.take(i);
      claims.push({
        id: row.id,
        type: row.type,
        config: JSON.parse(row.config),
        timeoutMs: row.timeout_ms,
        leaseId,
        expiresAt: item.context.leaseExpiresAt ?? 0,
        term: ctx.term,
        attempt: item.context.attempts,
      });
      free.freeSlots -= offer.slotsPerType[row.type] ?? 1;
      free.freeGpuMemoryGb -= requirements.gpuMemoryGb;
      free.freeDiskGb -= requirements.diskGb;
      if (free.freeMemoryGb !== undefined) free.freeMemoryGb -= requirements.memoryGb ?? 0;
    }
    return claims;
  });
}

interface Stepping {
  id: string;
  state: JobState;
  context: JobContext;
}

/** When, under which term, why and by whom an item moves. */
interface StepAt {
  now: number;
  term: number;
  cause: string;
  node?: string | null;
}

/**
 * Runs the item's lifecycle machine on one event; writes the new state and, if the state changed, a
 * history row: replicated, and the job machine's trace (`GET /traces?machine=job` reads it).
 */
function step(db: Db, item: Stepping, event: JobEvent, at: StepAt): boolean {
  const next = nextJob(item.state, item.context, event);
  const to = next.state;
  const from = item.state;
  if (to === from && (next.context === item.context || JSON.stringify(next.context) === JSON.stringify(item.context))) {
    return false;
  }
  const statements = q(db);
  statements.updateItem.run(to, JSON.stringify(next.context), at.now, item.id);
  if (to !== from) {
    statements.insertHistory.run(item.id, from, to, event.type, at.cause, at.node ?? null, at.term, at.now);
  }
  item.state = to;
  item.context = next.context;
  if (to !== from && (to === "completed" || to === "dead-lettered")) {
    const row = statements.config.get(item.id) as { config: string } | null;
    const config: unknown = row ? JSON.parse(row.config) : undefined;
    const finished = { id: item.id, config, result: next.context.result, error: next.context.error };
    runItemFinished(db, finished, to, { now: at.now, term: at.term, node: at.node ?? null });
  }
  if (to === "cancelled" || to === "dead-lettered") {
    // What waits on an item that will never complete can never run: it ends too, saying why.
    for (const row of statements.dependents.all(item.id) as Record<string, unknown>[]) {
      const reason = `dependency ${item.id} ended ${to}`;
      step(db, fromRaw(row), { type: "cancel", reason }, { ...at, cause: reason });
    }
  }
  return true;
}

/** The context a new item starts with: the machine's initial one, the same for each attempt limit. */
const initialContexts = new Map<number, string>();

function initialContext(maxAttempts: number): string {
  let context = initialContexts.get(maxAttempts);
  if (context === undefined) {
    const [initial] = initialTransition(jobLifecycleMachine, { maxAttempts });
    context = JSON.stringify(initial.context);
    initialContexts.set(maxAttempts, context);
  }
  return context;
}

/** An item submitted again under an id the queue holds, with other content: which fields differ. */
export interface AddConflict {
  id: string;
  fields: string[];
}

/** What a submission's items are to the queue: new, already there as they are, or conflicting with what is there. */
export function classifyItems(db: Db, items: readonly NormalizedItem[]) {
  const fresh: NormalizedItem[] = [];
  const existing: string[] = [];
  const conflicts: AddConflict[] = [];
  const earlier = new Map<string, NormalizedItem>();
  for (const item of items) {
    const stored = earlier.get(item.id) ?? storedForm(db, item.id);
    if (!stored) {
      earlier.set(item.id, item);
      fresh.push(item);
      continue;
    }
    const fields = differingFields(stored, item);
    if (fields.length === 0) existing.push(item.id);
    else conflicts.push({ id: item.id, fields });
  }
  return { fresh, existing, conflicts };
}

/** A stored item as the submission that made it. */
function storedForm(db: Db, id: string): NormalizedItem | undefined {
  const item = itemExists(db, id) ? readItem(db, id) : undefined;
  if (!item) return undefined;
  const { type, priority, config, requirements, dependsOn, timeoutMs } = item;
  return { id, type, priority, config, requirements, dependsOn, timeoutMs, maxAttempts: item.context.maxAttempts };
}

function differingFields(a: NormalizedItem, b: NormalizedItem): string[] {
  const keys = ["type", "priority", "config", "requirements", "dependsOn", "maxAttempts", "timeoutMs"] as const;
  return keys.filter((k) => canonicalJson(a[k]) !== canonicalJson(b[k]));
}

/** JSON with every object's keys in order: the same content compares equal however a client ordered it. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, x: unknown) =>
    x !== null && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0)))
      : x,
  );
}

/**
 * Adds the items whose ids are new. An id already held is left as it is: `existing` if the submission is
 * the same (a retry), `conflicts` if it differs. The service refuses a conflicting submission before it
 * is proposed; this catches the race of two submissions in flight at once.
 */
export const workAdd = defineCommand({
  name: "work.add",
  payload: v.object({ items: v.array(normalizedItemSchema), now }),
  tables: [workItems, workHistory],
  apply(db, payload, ctx) {
    const { fresh, existing, conflicts } = classifyItems(db, payload.items);
    const statements = q(db);
    const adding = new Set(fresh);
    payload.items.forEach((item, i) => {
      if (!adding.has(item)) return;
      statements.insertItem.run(
        item.id,
        item.type,
        item.priority,
        JSON.stringify(item.config),
        JSON.stringify(item.requirements),
        JSON.stringify(item.dependsOn),
        item.timeoutMs,
        initialContext(item.maxAttempts),
        payload.now,
        payload.now,
        ctx.index * 10_000 + i,
      );
      statements.insertHistory.run(item.id, null, "pending", "submit", "submitted", null, ctx.term, payload.now);
    });
    return { added: fresh.map((i) => i.id), existing, conflicts };
  },
});

/** One node's claim (the form entries written before claims were grouped still carry). */
export const workClaim = defineCommand({
  name: "work.claim",
  payload: v.object({ ...claimRequestSchema.entries, now, leaseMs: wireNumberSchema }),
  tables: [workItems, workHistory],
  apply(db, payload, ctx): Claim[] {
    return claimAll(db, [payload], payload, ctx)[0] as Claim[];
  },
});

/** The claims that reached the leader in one event-loop turn: one entry, one answer per claim, in order. */
export const workClaimBatch = defineCommand({
  name: "work.claim.batch",
  payload: v.object({ claims: v.array(claimRequestSchema), now, leaseMs: wireNumberSchema }),
  tables: [workItems, workHistory],
  apply(db, payload, ctx): Claim[][] {
    return claimAll(db, payload.claims, payload, ctx);
  },
});

/** The claim a worker receives for an item it holds the lease on. */
export function claimOf(item: WorkItem, term: number): Claim {
  return {
    id: item.id,
    type: item.type,
    config: item.config,
    timeoutMs: item.timeoutMs,
    leaseId: item.context.leaseId as string,
    expiresAt: item.context.leaseExpiresAt ?? 0,
    term,
    attempt: item.context.attempts,
  };
}

function report(db: Db, r: ReportRequest, p: { now: number; leaseMs: number }, ctx: ApplyContext): ReportOutcome {
  const row = q(db).lifecycle.get(r.id) as { id: string; state: JobState; context: string } | null;
  if (!row) return { ok: false, status: 404, reason: `no work item "${r.id}"` };
  const item: Stepping = { id: row.id, state: row.state, context: JSON.parse(row.context) };
  const finished = r.kind === "complete" || r.kind === "fail";
  if (finished && item.context.finishedLeaseId === r.leaseId) return { ok: true, state: item.state, duplicate: true };
  const expiresAt = p.now + p.leaseMs;
  const event: JobEvent =
    r.kind === "start"
      ? { type: "start", leaseId: r.leaseId, expiresAt }
      : r.kind === "heartbeat"
        ? { type: "heartbeat", leaseId: r.leaseId, expiresAt }
        : r.kind === "complete"
          ? { type: "complete", leaseId: r.leaseId, result: r.result ?? null, artifacts: r.artifacts ?? [] }
          : { type: "fail", leaseId: r.leaseId, error: r.error ?? "failed", retryAt: r.retryAt ?? p.now };
  const cause =
    r.kind === "fail"
      ? `failed on ${r.node} (lease ${r.leaseId}): ${r.error ?? "no reason given"}`
      : `${r.kind} from ${r.node} (lease ${r.leaseId})`;
  if (!step(db, item, event, { now: p.now, term: ctx.term, cause, node: r.node })) {
    // A start or heartbeat sent again after its answer was lost: the lease is still this one.
    if (item.context.leaseId === r.leaseId) return { ok: true, state: item.state, duplicate: true };
    return {
      ok: false,
      status: 409,
      reason: `lease ${r.leaseId} is not the current lease of "${r.id}" (state ${item.state}); nothing changed`,
    };
  }
  return { ok: true, state: item.state, duplicate: false };
}

/** One worker's report on its lease (the form entries written before reports were grouped still carry). */
export const workReport = defineCommand({
  name: "work.report",
  payload: v.object({ ...reportRequestSchema.entries, now, leaseMs: wireNumberSchema }),
  tables: [workItems, workHistory],
  apply(db, payload, ctx): ReportOutcome {
    return report(db, payload, payload, ctx);
  },
});

/** The reports that reached the leader in one event-loop turn: one entry, one outcome per report, in order. */
export const workReportBatch = defineCommand({
  name: "work.report.batch",
  payload: v.object({ reports: v.array(reportRequestSchema), now, leaseMs: wireNumberSchema }),
  tables: [workItems, workHistory],
  apply(db, payload, ctx): ReportOutcome[] {
    return payload.reports.map((r) => report(db, r, payload, ctx));
  },
});

export const workCancel = defineCommand({
  name: "work.cancel",
  payload: v.object({ id: v.string(), reason: v.string(), now }),
  tables: [workItems, workHistory],
  apply(db, p, ctx): ReportOutcome {
    const item = readItem(db, p.id);
    if (!item) return { ok: false, status: 404, reason: `no work item "${p.id}"` };
    if (item.state === "cancelled") return { ok: true, state: item.state, duplicate: true };
    const at = { now: p.now, term: ctx.term, cause: p.reason };
    if (!step(db, item, { type: "cancel", reason: p.reason }, at)) {
      return { ok: false, status: 409, reason: `"${p.id}" is ${item.state} and can no longer be cancelled` };
    }
    return { ok: true, state: item.state, duplicate: false };
  },
});

/**
 * The leader's clock applied to the queue: expired leases go back to the queue, waited-out retries too,
 * and (in entries that carry `graceMs`) an attempt held past its timeout plus the grace fails, so a worker
 * whose own timer was lost cannot keep an item forever by renewing its lease. At most `limit` items move
 * per entry; the leader's next tick takes the rest.
 */
export const workTick = defineCommand({
  name: "work.tick",
  payload: v.object({ now, limit: v.optional(wireNumberSchema), graceMs: v.optional(wireNumberSchema) }),
  tables: [workItems, workHistory],
  apply(db, p, ctx) {
    let expired = 0;
    let retried = 0;
    let timedOut = 0;
    const lifecycle = q(db).lifecycle;
    for (const due of dueItems(db, p.now, p)) {
      // Read again: an item that an earlier step in this tick ended (a dependency's cascade) must not move.
      const row = lifecycle.get(due.id) as { id: string; state: JobState; context: string } | null;
      if (!row) continue;
      const item: Stepping = { id: row.id, state: row.state, context: JSON.parse(row.context) };
      const at = { now: p.now, term: ctx.term };
      const { leaseId, leaseNode, leaseExpiresAt, claimedAt } = item.context;
      if (item.state === "retry-wait") {
        if (step(db, item, { type: "retry-due", now: p.now }, { ...at, cause: "backoff over" })) retried++;
      } else if (leaseExpiresAt !== null && leaseExpiresAt <= p.now) {
        const cause = `lease ${leaseId} of ${leaseNode} expired`;
        if (step(db, item, { type: "lease-expired", now: p.now }, { ...at, cause })) expired++;
      } else if (leaseId !== null && typeof claimedAt === "number" && p.graceMs !== undefined) {
        const error =
          `timed out: held by ${leaseNode} for ${p.now - claimedAt} ms, past its ${due.timeoutMs} ms timeout ` +
          `and ${p.graceMs} ms of grace`;
        const event: JobEvent = { type: "fail", leaseId, error, retryAt: p.now };
        if (step(db, item, event, { ...at, cause: `${error} (lease ${leaseId})` })) timedOut++;
      }
    }
    return { expired, retried, timedOut };
  },
});

/**
 * Items a tick would move at `at`, at most `limit`: leases run out, backoffs over and, given `graceMs`,
 * attempts past their timeout plus grace. A walk of the claim-order index over the in-flight and
 * waiting states only, never the finished items, in that index's order.
 */
export function dueItems(
  db: Db,
  at: number,
  opts: { limit?: number; graceMs?: number } = {},
): Array<{ id: string; timeoutMs: number }> {
  const rows = q(db).due.all(at, opts.graceMs ?? null, opts.limit ?? -1) as { id: string; timeout_ms: number }[];
  return rows.map((r) => ({ id: r.id, timeoutMs: r.timeout_ms }));
}

const FINISHED = ["completed", "cancelled", "dead-lettered"];

/**
 * Forgets the oldest finished items (and their history) while more than `keep` are held, at most `limit` per
 * entry, and never one finished after `before`: the replicated state (and every snapshot) stays bounded on a
 * cluster that runs for months. What was learned from them stays (a run's counts, models and match results).
 */
export const workPrune = defineCommand({
  name: "work.prune",
  payload: v.object({ keep: intIn(0, 100_000_000), before: timeMsSchema, limit: intIn(1, 10_000) }),
  tables: [workItems, workHistory],
  apply(db, p) {
    const ids = prunable(db, p);
    const list = JSON.stringify(ids);
    db.$client.prepare("DELETE FROM work_history WHERE item_id IN (SELECT value FROM json_each(?))").run(list);
    db.$client.prepare("DELETE FROM work_items WHERE id IN (SELECT value FROM json_each(?))").run(list);
    return { pruned: ids.length };
  },
});

/**
 * The finished items a prune removes, oldest first: past the newest `keep` finished, only those finished before
 * `before`, at most `limit`. The leader proposes a prune only when this is not empty.
 */
export function prunable(db: Db, p: { keep: number; before: number; limit: number }): string[] {
  const excess = Math.min(p.limit, finishedCount(db) - p.keep);
  if (excess <= 0) return [];
  const rows = db.$client
    .prepare(
      `SELECT id FROM work_items WHERE state IN (SELECT value FROM json_each(?1)) AND updated_at < ?2
       ORDER BY updated_at, seq LIMIT ?3`,
    )
    .all(JSON.stringify(FINISHED), p.before, excess) as { id: string }[];
  return rows.map((r) => r.id);
}

/** How many finished items the queue holds (the leader prunes past its `keep_finished`). */
export function finishedCount(db: Db): number {
  const states = JSON.stringify(FINISHED);
  return (
    db.$client
      .prepare("SELECT count(*) AS n FROM work_items WHERE state IN (SELECT value FROM json_each(?))")
      .get(states) as {
      n: number;
    }
  ).n;
}

export const WORK_COMMANDS = [
  workAdd,
  workClaim,
  workClaimBatch,
  workReport,
  workReportBatch,
  workCancel,
  workTick,
  workPrune,
];

export function history(db: Db, opts: { itemId?: string; since?: number; limit: number }) {
  return db
    .select()
    .from(workHistory)
    .where(
      and(
        opts.itemId ? eq(workHistory.itemId, opts.itemId) : undefined,
        opts.since !== undefined ? gte(workHistory.at, opts.since) : undefined,
      ),
    )
    .orderBy(desc(workHistory.seq))
    .limit(opts.limit)
    .all()
    .reverse();
}

/** Items a node holds a lease on now. */
export function workItemsOfNode(db: Db, node: string): WorkItem[] {
  return db
    .select()
    .from(workItems)
    .where(inArray(workItems.state, ["claimed", "running"]))
    .all()
    .map(toItem)
    .filter((item) => item.context.leaseNode === node);
}

/** Items by state and type, highest priority first. */
export function listItems(db: Db, opts: { state?: string; type?: string; limit: number }): WorkItem[] {
  return db
    .select()
    .from(workItems)
    .where(
      and(
        opts.state ? eq(workItems.state, opts.state) : undefined,
        opts.type ? eq(workItems.type, opts.type) : undefined,
      ),
    )
    .orderBy(desc(workItems.priority), asc(workItems.seq))
    .limit(opts.limit)
    .all()
    .map(toItem);
}
