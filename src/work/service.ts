import { randomUUID } from "node:crypto";
import { count, inArray } from "drizzle-orm";
import type { JobTemplate } from "../config/schema.ts";
import { NotLeaderError } from "../consensus/raft.ts";
import type { ConsensusRuntime } from "../consensus/runtime.ts";
import type { Db } from "../db/client.ts";
import { workItems } from "../db/schema.ts";
import type { NodeInfo } from "../shared/node-info.ts";
import {
  type AddConflict,
  anyPending,
  type Claim,
  type ClaimRequest,
  claimOf,
  classifyItems,
  dueItems,
  history,
  itemExists,
  listItems,
  prunable,
  type ReportOutcome,
  type ReportRequest,
  readItem,
  workItemsOfNode,
} from "./commands.ts";
import { jobArgv, jobEnv } from "./job-command.ts";
import type { NormalizedItem, Offer, WorkItem, WorkItemInput } from "./model.ts";
import { misfits, neverFits } from "./placement.ts";

/** A submitted item a refusal is about: its place in the submission, and the field at fault. */
export interface RefusedField {
  index: number;
  field: string;
}

/** A refusal the HTTP layer turns into its status code (and, for a submission, the field it names). */
export class WorkError extends Error {
  constructor(
    readonly status: 404 | 409 | 422 | 429,
    message: string,
    readonly about: { retryAfterS?: number; item?: RefusedField } = {},
  ) {
    super(message);
    this.name = "WorkError";
  }
}

export interface NodeView {
  id: string;
  alive: boolean;
  info: NodeInfo | null;
}

export interface WorkServiceOptions {
  consensus: ConsensusRuntime;
  db: Db;
  jobs: Readonly<Record<string, JobTemplate>>;
  /** Every node this one knows (itself included), with its gossiped resources. */
  nodes: () => NodeView[];
  leaseMs: number;
  /** Finished items kept (older ones are pruned, oldest first); unset keeps every item. */
  keepFinished?: number;
  /** Past `soft` queued items submissions are flagged; past `hard` they are refused with 429. */
  limits: { soft: number; hard: number };
  now?: () => number;
}

const QUEUED = ["pending", "retry-wait"] as const;
/** A finished item stays at least this long, and one prune entry removes at most this many. */
const FINISHED_MIN_AGE_MS = 3_600_000;
const PRUNE_LIMIT = 1_000;
/** Items one tick entry moves at most: the apply of one entry stays short, the next tick takes the rest. */
const TICK_LIMIT = 512;
/**
 * How long past its timeout an attempt may be held before the leader fails it: the worker's own timer
 * kills the job at the timeout and reports; this covers that report's way to the leader many times over.
 */
const TIMEOUT_GRACE_MS = 60_000;
/** Nodes a refusal names one by one; a large cluster's are counted. */
const MAX_NODES_NAMED = 8;

export interface Submitted {
  added: string[];
  existing: string[];
  queued: number;
}

function conflictError(
  items: readonly NormalizedItem[],
  conflicts: readonly AddConflict[],
  added: readonly string[] = [],
): WorkError {
  const named = conflicts.map((c) => `"${c.id}" (${c.fields.join(", ")})`).join(", ");
  const others = added.length > 0 ? `; the other ${added.length} item(s) were added` : "";
  const index = items.findIndex((i) => i.id === conflicts[0]?.id);
  return new WorkError(409, `ids already used by items with other content: ${named}${others}`, {
    item: { index, field: "id" },
  });
}

/** The work queue as the rest of the node uses it: writes go through Raft, reads come from local state. */
export class WorkService {
  private readonly now: () => number;
  /** Claims and reports arriving in one event-loop turn are proposed together, one entry each. */
  private readonly claimTogether: (request: ClaimRequest) => Promise<Claim[]>;
  private readonly reportTogether: (report: ReportRequest) => Promise<ReportOutcome>;

  constructor(private readonly opts: WorkServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.claimTogether = opts.consensus.coalesce((claims: ClaimRequest[]) => this.proposeClaims(claims));
    this.reportTogether = opts.consensus.coalesce((reports: ReportRequest[]) => this.proposeReports(reports));
  }

  /** Types some known node can run: it has the capability and the cluster file has a template. */
  executableTypes(): Set<string> {
    const types = new Set<string>();
    for (const n of this.opts.nodes()) {
      for (const c of n.info?.capabilities ?? []) if (this.opts.jobs[c]) types.add(c);
    }
    return types;
  }

  /**
   * Adds items, idempotent by id: an item already held with the same content is answered as `existing`
   * (a retry whose first answer was lost), one with other content is refused (409). Only new items are
   * checked against the types, the nodes, the dependencies and the queue's limit.
   */
  async submit(inputs: readonly WorkItemInput[]): Promise<Submitted> {
    const now = this.now();
    const items: NormalizedItem[] = inputs.map((input) => ({
      id: input.id ?? randomUUID(),
      type: input.type,
      priority: input.priority,
      config: input.config,
      requirements: input.requirements,
      dependsOn: input.dependsOn,
      maxAttempts: input.maxAttempts,
      timeoutMs: input.timeout ?? this.opts.jobs[input.type]?.timeout ?? 3_600_000,
    }));
    const { fresh, existing, conflicts } = classifyItems(this.opts.db, items);
    if (conflicts.length > 0) throw conflictError(items, conflicts);
    const refuse = (item: NormalizedItem, field: string, message: string) =>
      new WorkError(422, message, { item: { index: items.indexOf(item), field } });
    const runnable = this.executableTypes();
    const live = this.opts.nodes().filter((n) => n.alive);
    const batch = new Set(items.map((i) => i.id));
    for (const item of fresh) {
      if (!this.opts.jobs[item.type]) {
        throw refuse(item, "type", `type "${item.type}" has no job template in the cluster file ([jobs.${item.type}])`);
      }
      if (!runnable.has(item.type)) {
        throw refuse(item, "type", `no node in the cluster runs type "${item.type}" (no node has that capability)`);
      }
      const unfit = paramsProblem(this.opts.jobs[item.type]?.command ?? [], item);
      if (unfit) throw refuse(item, "config", unfit);
      const never = this.whyNoneCanRun(item, live);
      if (never) throw refuse(item, "requirements", `no live node can ever run the item: ${never}`);
      const unknown = item.dependsOn.filter((d) => !batch.has(d) && !itemExists(this.opts.db, d));
      if (unknown.length > 0) throw refuse(item, "dependsOn", `dependsOn names unknown items: ${unknown.join(", ")}`);
    }
    const queued = this.queuedCount();
    if (fresh.length === 0) return { added: [], existing, queued };
    if (queued + fresh.length > this.opts.limits.hard) {
      throw new WorkError(429, `queue full: ${queued} items queued, hard limit ${this.opts.limits.hard}`, {
        retryAfterS: 5,
      });
    }
    const { result } = await this.opts.consensus.propose({ name: "work.add", payload: { items: fresh, now } });
    const applied = result as { added: string[]; existing: string[]; conflicts?: AddConflict[] };
    // Another submission of the same id with other content won the race to the log.
    if (applied.conflicts?.length) throw conflictError(items, applied.conflicts, applied.added);
    return {
      added: applied.added,
      existing: [...existing, ...applied.existing],
      queued: queued + applied.added.length,
    };
  }

  /**
   * Why none of the live nodes could ever run the item (what each lacks in all, not what is busy now),
   * or null when one could, or when some live node's resources are not known yet.
   */
  private whyNoneCanRun(item: NormalizedItem, live: readonly NodeView[]): string | null {
    const memoryGb = Math.max(item.requirements.memoryGb, this.opts.jobs[item.type]?.requires.memory_gb ?? 0);
    const verdicts: string[] = [];
    for (const { id, info } of live) {
      if (!info) return null;
      const runs = info.capabilities.filter((c) => this.opts.jobs[c]);
      const reasons = neverFits(item, { id, info, runs }, memoryGb);
      if (reasons.length === 0) return null;
      verdicts.push(`${id}: ${reasons.join(", ")}`);
    }
    if (verdicts.length === 0) return "no node is live";
    const shown = verdicts.slice(0, MAX_NODES_NAMED);
    const more = verdicts.length - shown.length;
    return shown.join("; ") + (more > 0 ? `; and ${more} more node(s)` : "");
  }

  async claim(offer: Offer, max: number, claimId?: string, retry = false): Promise<Claim[]> {
    const leader = this.opts.consensus.raft.currentRole === "leader";
    if (leader && claimId && retry) {
      // A retry whose first answer was lost: the leases it made are in the applied state already.
      const earlier = workItemsOfNode(this.opts.db, offer.node).filter((i) => i.context.claimId === claimId);
      if (earlier.length > 0) return earlier.map((i) => claimOf(i, this.opts.consensus.raft.currentTerm));
    }
    return this.claimTogether({ offer, max, claimId, retry });
  }

  /**
   * Proposes the turn's claims as one entry. On the leader, a claim for types of which nothing is queued
   * is answered empty without a replicated write (a race only costs the worker's next poll); a retry
   * always goes through the log, where it finds the leases its lost answer carried. Elsewhere the
   * proposal is refused, and the workers hear where the leader is.
   */
  private async proposeClaims(claims: ClaimRequest[]): Promise<Claim[][]> {
    const leader = this.opts.consensus.raft.currentRole === "leader";
    const queued = new Map<string, boolean>();
    const anyQueued = (types: readonly string[]) => {
      if (!leader) return true;
      const key = JSON.stringify(types);
      let found = queued.get(key);
      if (found === undefined) {
        found = anyPending(this.opts.db, types);
        queued.set(key, found);
      }
      return found;
    };
    const proposed = claims.filter((c) => (c.claimId !== undefined && c.retry) || anyQueued(c.offer.types));
    if (proposed.length === 0) return claims.map(() => []);
    const payload = { claims: proposed, now: this.now(), leaseMs: this.opts.leaseMs };
    const { result } = await this.opts.consensus.propose({ name: "work.claim.batch", payload });
    const answers = new Map(proposed.map((c, i) => [c, (result as Claim[][])[i] ?? []]));
    return claims.map((c) => answers.get(c) ?? []);
  }

  /** A report for an item this leader knows does not exist is refused here, before it costs a log entry. */
  async report(
    id: string,
    kind: "start" | "heartbeat" | "complete" | "fail",
    body: {
      leaseId: string;
      node: string;
      result?: unknown;
      artifacts?: string[];
      error?: string;
      retryDelayMs?: number;
    },
  ): Promise<ReportOutcome> {
    if (this.knownMissing(id)) return { ok: false, status: 404, reason: `no work item "${id}"` };
    return this.reportTogether({
      id,
      kind,
      leaseId: body.leaseId,
      node: body.node,
      result: body.result,
      artifacts: body.artifacts,
      error: body.error,
      // The backoff starts when the leader hears of the failure; the batch's time is within a turn of it.
      retryAt: this.now() + (body.retryDelayMs ?? 0),
    });
  }

  /**
   * Whether the item surely does not exist: not here, and this node is a leader whose applied state
   * holds every committed entry (the read a linearizable GET makes). Anywhere else the proposal decides.
   */
  private knownMissing(id: string): boolean {
    if (itemExists(this.opts.db, id)) return false;
    try {
      this.opts.consensus.linearizableIndex();
    } catch (e) {
      if (e instanceof NotLeaderError) return false;
      throw e;
    }
    return !itemExists(this.opts.db, id);
  }

  private async proposeReports(reports: ReportRequest[]): Promise<ReportOutcome[]> {
    const payload = { reports, now: this.now(), leaseMs: this.opts.leaseMs };
    const { result } = await this.opts.consensus.propose({ name: "work.report.batch", payload });
    return result as ReportOutcome[];
  }

  async cancel(id: string, reason: string): Promise<ReportOutcome> {
    const { result } = await this.opts.consensus.propose({
      name: "work.cancel",
      payload: { id, reason, now: this.now() },
    });
    return result as ReportOutcome;
  }

  /**
   * Leader housekeeping: moves expired leases, finished backoffs and attempts held past their timeout
   * plus a grace, only when there is something to move, a bounded number per entry.
   */
  async tickIfDue(): Promise<void> {
    if (this.opts.consensus.raft.currentRole !== "leader") return;
    const now = this.now();
    const keep = this.opts.keepFinished;
    // Only what finished a while ago goes: an operator (or a run's analytics) can still read the last hour. The
    // leader looks first, so a queue past `keep` whose items are all recent does not add an entry every tick.
    const prune = keep === undefined ? null : { keep, before: now - FINISHED_MIN_AGE_MS, limit: PRUNE_LIMIT };
    if (prune && prunable(this.opts.db, { ...prune, limit: 1 }).length > 0) {
      await this.opts.consensus.propose({ name: "work.prune", payload: prune });
    }
    const bounds = { limit: TICK_LIMIT, graceMs: TIMEOUT_GRACE_MS };
    if (dueItems(this.opts.db, now, { ...bounds, limit: 1 }).length === 0) return;
    await this.opts.consensus.propose({ name: "work.tick", payload: { now, ...bounds } });
  }

  /** Counted over the claim-order index's queued ranges, not over every item ever submitted. */
  queuedCount(): number {
    const [row] = this.opts.db
      .select({ n: count() })
      .from(workItems)
      .where(inArray(workItems.state, [...QUEUED]))
      .all();
    return row?.n ?? 0;
  }

  status() {
    const rows = this.opts.db
      .select({ state: workItems.state, type: workItems.type, n: count() })
      .from(workItems)
      .groupBy(workItems.state, workItems.type)
      .all();
    const byState: Record<string, number> = {};
    const byType: Record<string, Record<string, number>> = {};
    for (const r of rows) {
      byState[r.state] = (byState[r.state] ?? 0) + r.n;
      byType[r.type] ??= {};
      (byType[r.type] as Record<string, number>)[r.state] = r.n;
    }
    const queued = this.queuedCount();
    const { soft, hard } = this.opts.limits;
    return {
      byState,
      byType,
      backpressure: { queued, soft, hard, level: queued >= hard ? "refusing" : queued >= soft ? "high" : "ok" },
      stale: this.opts.consensus.raft.currentRole !== "leader",
    };
  }

  get(id: string) {
    const item = readItem(this.opts.db, id);
    if (!item) throw new WorkError(404, `no work item "${id}"`);
    return { ...item, whyPending: item.state === "pending" ? this.whyPending(item) : null };
  }

  /** Each known node and why it does not take this item, plus unfinished dependencies. */
  whyPending(item: WorkItem) {
    const now = this.now();
    const unfinished = item.dependsOn.filter((d) => readItem(this.opts.db, d)?.state !== "completed");
    const nodes = this.opts.nodes().map((n) => {
      if (!n.alive) return { node: n.id, fits: false, reasons: ["not alive"] };
      if (!n.info) return { node: n.id, fits: false, reasons: ["resources not known yet"] };
      if (n.info.draining !== undefined) return { node: n.id, fits: false, reasons: [`drained: ${n.info.draining}`] };
      const reasons = misfits(item, this.offerOf(n.id, n.info), now);
      return { node: n.id, fits: reasons.length === 0, reasons };
    });
    const summary =
      unfinished.length > 0
        ? `waiting for ${unfinished.join(", ")} to complete`
        : nodes.some((n) => n.fits)
          ? "fits a node: it will be claimed at that node's next request"
          : "no node fits it now";
    return { summary, dependencies: unfinished, nodes };
  }

  /** What a node would offer, as far as gossip tells. */
  offerOf(id: string, info: NodeInfo): Offer {
    const gpuFree = info.gpus.reduce((a, g) => a + Math.max(0, g.memoryTotalMb - g.memoryUsedMb), 0) / 1024;
    return {
      node: id,
      types: info.capabilities.filter((c) => this.opts.jobs[c]),
      capabilities: [...info.capabilities],
      freeSlots: Math.max(0, info.slots - (info.busySlots ?? 0)),
      gpus: info.gpus.length,
      freeGpuMemoryGb: gpuFree,
      freeDiskGb: info.disk.freeBytes / 1024 ** 3,
      freeMemoryGb: info.memory.freeBytes / 1024 ** 3,
      slotsPerType: Object.fromEntries(Object.entries(this.opts.jobs).map(([t, j]) => [t, j.slots])),
    };
  }

  history(opts: { itemId?: string; since?: number; limit: number }) {
    return history(this.opts.db, opts);
  }

  list(opts: { state?: string; type?: string; limit: number }) {
    return listItems(this.opts.db, opts);
  }

  ofNode(node: string) {
    return workItemsOfNode(this.opts.db, node);
  }
}

/** Why the item's config cannot fill its template's argv and environment (a missing or non-plain value), if it cannot. */
function paramsProblem(command: readonly string[], item: NormalizedItem): string | undefined {
  const ctx = { workId: item.id, type: item.type, attempt: 1, outputDir: "" };
  try {
    jobArgv(command, item.config, ctx);
    jobEnv(item.config, ctx, {}, {});
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
