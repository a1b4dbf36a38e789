import { and, asc, desc, eq, gte, inArray, sql } from "drizzle-orm";
import * as v from "valibot";
import { initialTransition, type SnapshotFrom, transition } from "xstate";
import { defineCommand } from "../consensus/state-machine.ts";
import type { Db } from "../db/client.ts";
import { workHistory, workItems } from "../db/schema.ts";
import { type JobEvent, type JobState, jobLifecycleMachine } from "../machines/job-lifecycle.ts";
import { type Offer, offerSchema, requirementsSchema, type WorkItem } from "./model.ts";
import { misfits } from "./placement.ts";

/**
 * The work queue's replicated commands. Each apply is deterministic: times, ids and backoff jitter
 * are chosen by the leader when it proposes and arrive in the payload.
 */

const now = v.number();

const normalizedItemSchema = v.object({
  id: v.string(),
  type: v.string(),
  priority: v.number(),
  config: v.record(v.string(), v.unknown()),
  requirements: requirementsSchema,
  dependsOn: v.array(v.string()),
  maxAttempts: v.number(),
  timeoutMs: v.number(),
});

export type NormalizedItem = v.InferOutput<typeof normalizedItemSchema>;

export interface Claim {
  id: string;
  type: string;
  config: Record<string, unknown>;
  timeoutMs: number;
  leaseId: string;
  expiresAt: number;
  term: number;
  attempt: number;
}

export type ReportOutcome =
  | { ok: true; state: JobState; duplicate: boolean }
  | { ok: false; status: 404 | 409; reason: string };

function toItem(row: typeof workItems.$inferSelect): WorkItem {
  return row as unknown as WorkItem;
}

/** Statements prepared once per database: the queue applies thousands of commands a second. */
function prepare(db: Db) {
  const p = sql.placeholder;
  return {
    byId: db
      .select()
      .from(workItems)
      .where(eq(workItems.id, p("id")))
      .prepare(),
    /**
     * Pending items of the offered types whose dependencies are all completed, in claim order, one page
     * at a time: blocked items never fill the window that runnable ones need.
     */
    runnablePage: db.$client.prepare(`
      SELECT * FROM work_items wi
      WHERE wi.state = 'pending'
        AND wi.type IN (SELECT value FROM json_each(?1))
        AND (wi.depends_on = '[]' OR NOT EXISTS (
          SELECT 1 FROM json_each(wi.depends_on) d LEFT JOIN work_items dep ON dep.id = d.value
          WHERE dep.state IS NOT 'completed'))
      ORDER BY wi.priority DESC, wi.seq ASC
      LIMIT ?2 OFFSET ?3`),
    anyRunnable: db.$client.prepare(`
      SELECT 1 FROM work_items wi
      WHERE wi.state = 'pending' AND wi.type IN (SELECT value FROM json_each(?1))
      LIMIT 1`),
    dependents: db.$client.prepare(`
      SELECT * FROM work_items wi
      WHERE wi.state IN ('pending', 'retry-wait')
        AND EXISTS (SELECT 1 FROM json_each(wi.depends_on) d WHERE d.value = ?1)`),
    insertItem: db
      .insert(workItems)
      .values({
        id: p("id"),
        type: p("type"),
        priority: p("priority"),
        config: p("config"),
        requirements: p("requirements"),
        dependsOn: p("dependsOn"),
        timeoutMs: p("timeoutMs"),
        state: p("state"),
        context: p("context"),
        createdAt: p("createdAt"),
        updatedAt: p("updatedAt"),
        seq: p("seq"),
      })
      .prepare(),
    insertHistory: db
      .insert(workHistory)
      .values({
        itemId: p("itemId"),
        from: p("from"),
        to: p("to"),
        event: p("event"),
        cause: p("cause"),
        node: p("node"),
        term: p("term"),
        at: p("at"),
      })
      .prepare(),
    updateItem: db.$client.prepare("UPDATE work_items SET state = ?, context = ?, updated_at = ? WHERE id = ?"),
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
  return q(db).anyRunnable.get(JSON.stringify(types)) !== null;
}

/** How many runnable rows one claim may look at in all: a bound on the work one apply can do. */
const CLAIM_SCAN_BOUND = 2_048;

/**
 * Pending items `offer` can take now, in claim order, at most `max` (a pure read: claims and pre-checks
 * share it). Resources are taken from the offer as items are picked, so one claim never over-commits.
 */
export function claimable(db: Db, offer: Offer, max: number, now: number): WorkItem[] {
  const out: WorkItem[] = [];
  const free = { ...offer };
  const page = Math.max(16, max * 4);
  for (let offset = 0; offset < CLAIM_SCAN_BOUND && out.length < max && free.freeSlots > 0; offset += page) {
    const rows = q(db).runnablePage.all(JSON.stringify(offer.types), page, offset) as Record<string, unknown>[];
    for (const row of rows) {
      if (out.length >= max || free.freeSlots <= 0) break;
      const item = fromRaw(row);
      if (misfits(item, free, now).length > 0) continue;
      out.push(item);
      free.freeSlots -= offer.slotsPerType[item.type] ?? 1;
      free.freeGpuMemoryGb -= item.requirements.gpuMemoryGb;
      free.freeDiskGb -= item.requirements.diskGb;
    }
    if (rows.length < page) break;
  }
  return out;
}

/** Runs the item's lifecycle machine on one event; writes the new state and a history row if it changed. */
function step(
  db: Db,
  item: WorkItem,
  event: JobEvent,
  at: { now: number; term: number; cause: string; node?: string | null },
): boolean {
  const snapshot = jobLifecycleMachine.resolveState({ value: item.state, context: item.context });
  const [next] = transition(jobLifecycleMachine, snapshot as SnapshotFrom<typeof jobLifecycleMachine>, event);
  const to = next.value as JobState;
  if (to === item.state && JSON.stringify(next.context) === JSON.stringify(item.context)) return false;
  const statements = q(db);
  statements.updateItem.run(to, JSON.stringify(next.context), at.now, item.id);
  if (to !== item.state) {
    statements.insertHistory.run({
      itemId: item.id,
      from: item.state,
      to,
      event: event.type,
      cause: at.cause,
      node: at.node ?? null,
      term: at.term,
      at: at.now,
    });
  }
  item.state = to;
  item.context = next.context;
  if (to === "cancelled" || to === "dead-lettered") {
    // What waits on an item that will never complete can never run: it ends too, saying why.
    for (const row of statements.dependents.all(item.id) as Record<string, unknown>[]) {
      const reason = `dependency ${item.id} ended ${to}`;
      step(db, fromRaw(row), { type: "cancel", reason }, { ...at, cause: reason });
    }
  }
  return true;
}

export const workAdd = defineCommand({
  name: "work.add",
  payload: v.object({ items: v.array(normalizedItemSchema), now }),
  tables: [workItems, workHistory],
  apply(db, payload, ctx) {
    const added: string[] = [];
    const existing: string[] = [];
    payload.items.forEach((item, i) => {
      if (readItem(db, item.id)) {
        existing.push(item.id);
        return;
      }
      const [initial] = initialTransition(jobLifecycleMachine, { maxAttempts: item.maxAttempts });
      const statements = q(db);
      statements.insertItem.run({
        id: item.id,
        type: item.type,
        priority: item.priority,
        config: item.config,
        requirements: item.requirements,
        dependsOn: item.dependsOn,
        timeoutMs: item.timeoutMs,
        state: "pending",
        context: initial.context,
        createdAt: payload.now,
        updatedAt: payload.now,
        seq: ctx.index * 10_000 + i,
      });
      statements.insertHistory.run({
        itemId: item.id,
        from: null,
        to: "pending",
        event: "submit",
        cause: "submitted",
        node: null,
        term: ctx.term,
        at: payload.now,
      });
      added.push(item.id);
    });
    return { added, existing };
  },
});

export const workClaim = defineCommand({
  name: "work.claim",
  payload: v.object({
    offer: offerSchema,
    max: v.number(),
    now,
    leaseMs: v.number(),
    /** The worker's id for this claim; a retry with the same id (its answer was lost) gets the same leases. */
    claimId: v.optional(v.string()),
    retry: v.optional(v.boolean()),
  }),
  tables: [workItems, workHistory],
  apply(db, payload, ctx): Claim[] {
    const node = payload.offer.node;
    const claimId = payload.claimId ?? null;
    if (claimId && payload.retry) {
      const earlier = workItemsOfNode(db, node).filter((item) => item.context.claimId === claimId);
      if (earlier.length > 0) return earlier.map((item) => claimOf(item, ctx.term));
    }
    return claimable(db, payload.offer, payload.max, payload.now).map((item, n) => {
      const leaseId = `${ctx.term}.${ctx.index}.${n}`;
      const expiresAt = payload.now + payload.leaseMs;
      step(
        db,
        item,
        { type: "claim", node, leaseId, expiresAt, claimId },
        {
          now: payload.now,
          term: ctx.term,
          cause: `claimed by ${node} (lease ${leaseId})`,
          node,
        },
      );
      return claimOf(item, ctx.term);
    });
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

export const workReport = defineCommand({
  name: "work.report",
  payload: v.object({
    id: v.string(),
    leaseId: v.string(),
    node: v.string(),
    kind: v.picklist(["start", "heartbeat", "complete", "fail"]),
    result: v.optional(v.unknown()),
    error: v.optional(v.string()),
    retryAt: v.optional(v.number()),
    now,
    leaseMs: v.number(),
  }),
  tables: [workItems, workHistory],
  apply(db, p, ctx): ReportOutcome {
    const item = readItem(db, p.id);
    if (!item) return { ok: false, status: 404, reason: `no work item "${p.id}"` };
    const finished = p.kind === "complete" || p.kind === "fail";
    if (finished && item.context.finishedLeaseId === p.leaseId) return { ok: true, state: item.state, duplicate: true };
    const expiresAt = p.now + p.leaseMs;
    const event: JobEvent =
      p.kind === "start"
        ? { type: "start", leaseId: p.leaseId, expiresAt }
        : p.kind === "heartbeat"
          ? { type: "heartbeat", leaseId: p.leaseId, expiresAt }
          : p.kind === "complete"
            ? { type: "complete", leaseId: p.leaseId, result: p.result ?? null }
            : { type: "fail", leaseId: p.leaseId, error: p.error ?? "failed", retryAt: p.retryAt ?? p.now };
    const cause =
      p.kind === "fail"
        ? `failed on ${p.node} (lease ${p.leaseId}): ${p.error ?? "no reason given"}`
        : `${p.kind} from ${p.node} (lease ${p.leaseId})`;
    if (!step(db, item, event, { now: p.now, term: ctx.term, cause, node: p.node })) {
      return {
        ok: false,
        status: 409,
        reason: `lease ${p.leaseId} is not the current lease of "${p.id}" (state ${item.state}); nothing changed`,
      };
    }
    return { ok: true, state: item.state, duplicate: false };
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
    if (!step(db, item, { type: "cancel", reason: p.reason }, { now: p.now, term: ctx.term, cause: p.reason })) {
      return { ok: false, status: 409, reason: `"${p.id}" is ${item.state} and can no longer be cancelled` };
    }
    return { ok: true, state: item.state, duplicate: false };
  },
});

/** The leader's clock applied to the queue: expired leases go back to the queue, waited-out retries too. */
export const workTick = defineCommand({
  name: "work.tick",
  payload: v.object({ now }),
  tables: [workItems, workHistory],
  apply(db, p, ctx) {
    let expired = 0;
    let retried = 0;
    for (const item of dueItems(db, p.now)) {
      if (item.state === "retry-wait") {
        if (step(db, item, { type: "retry-due", now: p.now }, { now: p.now, term: ctx.term, cause: "backoff over" })) {
          retried++;
        }
      } else {
        const cause = `lease ${item.context.leaseId} of ${item.context.leaseNode} expired`;
        if (step(db, item, { type: "lease-expired", now: p.now }, { now: p.now, term: ctx.term, cause })) expired++;
      }
    }
    return { expired, retried };
  },
});

/** Items whose lease ran out or whose backoff is over at `now` (what a tick would move). */
export function dueItems(db: Db, at: number): WorkItem[] {
  return db
    .select()
    .from(workItems)
    .where(inArray(workItems.state, ["claimed", "running", "retry-wait"]))
    .all()
    .map(toItem)
    .filter((item) =>
      item.state === "retry-wait"
        ? (item.context.notBefore ?? 0) <= at
        : item.context.leaseExpiresAt !== null && item.context.leaseExpiresAt <= at,
    );
}

export const WORK_COMMANDS = [workAdd, workClaim, workReport, workCancel, workTick];

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
