import { randomUUID } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { asc, eq } from "drizzle-orm";
import * as v from "valibot";
import type { DataCategory } from "../config/load.ts";
import type { JobTemplate } from "../config/schema.ts";
import type { Timing } from "../config/timing.ts";
import type { Db } from "../db/client.ts";
import { localJobs, workOutbox } from "../db/schema.ts";
import { CallError, type PeerTransport } from "../net/peer-transport.ts";
import { ROUTES } from "../net/route-table.ts";
import { GuardedWrite } from "../observability/guarded-write.ts";
import type { Logger } from "../observability/log.ts";
import type { RunPolicy } from "../runs/policy.ts";
import { publishStage, type RunFolders, runFolders, stageInputs } from "../runs/stage-io.ts";
import { type RunItem, runItemOf } from "../runs/stage-item.ts";
import type { NodeInfo } from "../shared/node-info.ts";
import { decideClaim, runnableTypes } from "./claim-decision.ts";
import type { Claim } from "./commands.ts";
import { jobArgv, jobEnv, withSelf } from "./job-command.ts";
import { jobResultSchema } from "./model.ts";

type ReportKind = "start" | "heartbeat" | "complete" | "fail";
type Report = { itemId: string; kind: ReportKind; body: unknown; createdAt: number };

const REPORT_ROUTES = {
  start: ROUTES.peerWorkStart,
  heartbeat: ROUTES.peerWorkHeartbeat,
  complete: ROUTES.peerWorkComplete,
  fail: ROUTES.peerWorkFail,
} as const;

/** After SIGTERM at the timeout, how long a job has to exit before SIGKILL. */
const KILL_GRACE_MS = 10_000;
/** After a job exits, how long its output may still be drained. */
const OUTPUT_GRACE_MS = 2_000;
/** Each job's own log, in its output folder. */
const JOB_LOG = "job.log";
/** Artifact paths reported per job; a job that leaves more files should report a folder or a manifest. */
const MAX_ARTIFACTS = 1_000;
/** The last stdout line is the job's JSON result; longer lines are not results. */
const MAX_RESULT_LINE = 64 * 1024;

export interface WorkerOptions {
  nodeId: string;
  dataDir: string;
  capabilities: readonly string[];
  slots: number;
  jobs: Readonly<Record<string, JobTemplate>>;
  timing: Timing;
  transport: PeerTransport;
  db: Db;
  log: Logger;
  /** The leader as this node knows it: its id (which our signature names) and address. */
  leader: () => { id: string; address: string } | null;
  resources: () => NodeInfo | null;
  /** Training runs whose stages this node may run, its data categories, and how it hashes a file off the main thread. */
  runs?: Readonly<Record<string, RunPolicy>>;
  data?: readonly DataCategory[];
  hashFile?: (path: string) => Promise<string>;
  /** A run's stage needs a file of this category that is not here yet, or has put new files into it. */
  onData?: (category: string) => void;
  /** Files of a category under a folder that live peers hold and this node lacks (as `path@sha256`). */
  missingFiles?: (category: string, prefix: string) => string[];
}

/** How long a run's item waits for the models it reads to arrive by data sync before the attempt fails. */
const MODEL_WAIT_MS = 300_000;
const MODEL_POLL_MS = 200;

interface RunningJob {
  claim: Claim;
  /** Null while a run's item waits for its inputs. */
  proc: Subprocess | null;
  slots: number;
  outputDir: string;
  timers: Array<ReturnType<typeof setTimeout>>;
  /** A run's stage: its outputs are checked and published before the completion is reported. */
  stage?: { run: RunItem; folders: RunFolders } | null;
}

/** Parses the job's last stdout line as its JSON result, or says why not. */
export function parseResult(lastLine: string): { result: unknown } | { error: string } {
  const line = lastLine.trim();
  if (line === "") return { result: null };
  const asText = { result: { output: line.slice(0, 1_000) } };
  try {
    const result: unknown = JSON.parse(line);
    // A result the leader would refuse must not sit at the head of the outbox forever: it goes as text.
    return v.is(jobResultSchema, result) ? { result } : asText;
  } catch {
    return asText;
  }
}

/** Files a job left in its output folder (its log aside), as absolute paths; at most MAX_ARTIFACTS. */
export async function listArtifacts(outputDir: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const rel of new Bun.Glob("**/*").scan({ cwd: outputDir, onlyFiles: true })) {
      if (rel === JOB_LOG) continue;
      found.push(join(outputDir, rel));
      if (found.length >= MAX_ARTIFACTS) break;
    }
  } catch {
    // The folder is gone (removed by the job itself): no artifacts.
  }
  return found.sort();
}

/** Exponential backoff with full jitter for the retry of a failed attempt. */
export function retryDelayMs(attempt: number, random = Math.random, baseMs = 5_000, maxMs = 600_000): number {
  return Math.round(random() * Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1)));
}

/**
 * Runs work on this node: claims only what fits its free slots and resources, runs each item as a
 * real process in its own group, renews the lease while it runs, and reports the outcome through a
 * durable outbox that is retried (with backoff and jitter) until the leader acknowledges it.
 */
export class Worker {
  private readonly running = new Map<string, RunningJob>();
  private readonly timers: Array<ReturnType<typeof setInterval>> = [];
  /** Why an operator drained this node (it claims nothing until undrained), or null. */
  private drained: string | null = null;
  private stopping = false;
  private claiming = false;
  /** The id of a claim whose answer has not arrived yet: retried with it, the leader returns the same leases. */
  private claimId: string | null = null;
  /** Why the last claim round was skipped (logged once per change). */
  private lastHeldBack: string | null = null;
  private sending = false;
  private outboxBackoffMs = 0;
  private nextOutboxAt = 0;
  /** Reports the outbox could not take (a full disk): written with the next flush, sent from memory meanwhile. */
  private unsaved: Report[] = [];
  private readonly outboxWrites: GuardedWrite;
  private readonly jobRowWrites: GuardedWrite;

  constructor(private readonly opts: WorkerOptions) {
    this.outboxWrites = new GuardedWrite(opts.log, "work outbox write");
    this.jobRowWrites = new GuardedWrite(opts.log, "local job row write");
  }

  /** Types this node can run: a template in the cluster file and the capability on this node. */
  types(): string[] {
    return runnableTypes(this.opts.capabilities, this.opts.jobs);
  }

  /** This node's running jobs, for operators. */
  list() {
    return [...this.running.values()].map((j) => ({
      id: j.claim.id,
      type: j.claim.type,
      attempt: j.claim.attempt,
      leaseId: j.claim.leaseId,
      pid: j.proc?.pid ?? null,
      slots: j.slots,
    }));
  }

  busySlots(): number {
    let n = 0;
    for (const j of this.running.values()) n += j.slots;
    return n;
  }

  start(): void {
    this.reapOrphans();
    const poll = this.opts.timing.workPollMs;
    this.timers.push(setInterval(() => void this.claimOnce(), poll));
    this.timers.push(setInterval(() => void this.flushOutbox(), Math.max(100, poll / 4)));
  }

  /** Stops claiming, saying why; running jobs finish and report. */
  drain(reason: string): void {
    this.drained = reason;
  }

  /** Claims again. */
  undrain(): void {
    this.drained = null;
  }

  get drainReason(): string | null {
    return this.drained;
  }

  /** Stops claiming and ends running jobs (the node is going away; their leases will expire elsewhere). */
  stop(): void {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    for (const job of this.running.values()) if (job.proc) killGroup(job.proc, "SIGTERM");
  }

  async claimOnce(): Promise<void> {
    if (this.drained !== null || this.stopping || this.claiming) return;
    const decision = decideClaim({
      nodeId: this.opts.nodeId,
      capabilities: this.opts.capabilities,
      jobs: this.opts.jobs,
      slots: this.opts.slots,
      busySlots: this.busySlots(),
      resources: this.opts.resources(),
      leader: this.opts.leader(),
    });
    if (!decision.claim) {
      const { reason } = decision;
      if (reason !== null && reason !== this.lastHeldBack) this.opts.log.info("not claiming", { reason });
      if (reason !== null) this.lastHeldBack = reason;
      return;
    }
    this.lastHeldBack = null;
    this.claiming = true;
    const retry = this.claimId !== null;
    this.claimId ??= randomUUID();
    try {
      const answer = (await this.opts.transport.request(decision.to, ROUTES.peerWorkClaim, {
        body: { offer: decision.offer, max: decision.max, claimId: this.claimId, retry },
        timeoutMs: this.opts.timing.syncTimeoutMs,
      })) as { claims: Claim[] };
      this.claimId = null;
      for (const claim of answer.claims) if (!this.running.has(claim.id)) this.launch(claim);
    } catch (e) {
      this.opts.log.debug("claim failed", { error: (e as Error).message });
    } finally {
      this.claiming = false;
    }
  }

  private launch(claim: Claim): void {
    const run = runItemOf(claim.config);
    if (run) void this.launchRunItem(claim, run);
    else this.spawn(claim, null);
  }

  /**
   * A run's item: the lease is taken (start, heartbeats) while the models it reads arrive by data sync, then the
   * job runs with them as local files; an attempt whose inputs never arrive fails, to be retried elsewhere.
   */
  private async launchRunItem(claim: Claim, run: RunItem): Promise<void> {
    const policy = this.opts.runs?.[run.run];
    const folders = policy && this.opts.data ? runFolders(run.run, policy, this.opts.data) : null;
    if (!policy || !folders) {
      const error = `this node's cluster file has no [runs.${run.run}] with its data categories`;
      this.report(claim, "fail", { error, retryDelayMs: retryDelayMs(claim.attempt) });
      return;
    }
    const template = this.opts.jobs[claim.type];
    const job: RunningJob = { claim, proc: null, slots: template?.slots ?? 1, outputDir: "", timers: [] };
    this.running.set(claim.id, job);
    this.report(claim, "start", {});
    job.timers.push(setInterval(() => this.report(claim, "heartbeat", {}), this.opts.timing.workHeartbeatMs));
    /** The wait is over: the job runs (with timers of its own) or the attempt fails. */
    const release = () => {
      for (const t of job.timers) clearInterval(t);
      this.running.delete(claim.id);
    };
    const waitMs = Math.min(MODEL_WAIT_MS, claim.timeoutMs / 2);
    const deadline = Date.now() + waitMs;
    // A training reads the run's games: those its peers held when it began are awaited too, within the same
    // deadline; then it trains on what arrived (games keep coming while it waits, so "all" is never a condition).
    const games = run.stage === "train" ? this.opts.missingFiles?.(policy.games, `${run.run}/`) : undefined;
    const awaited = new Set(games ?? []);
    let asked = 0;
    for (;;) {
      if (this.running.get(claim.id) !== job) return; // abandoned or stopped meanwhile
      const inputs = stageInputs(run, claim.config, folders);
      if (awaited.size > 0) {
        const still = new Set(this.opts.missingFiles?.(policy.games, `${run.run}/`) ?? []);
        for (const file of awaited) if (!still.has(file)) awaited.delete(file);
      }
      if (!("missing" in inputs) && (awaited.size === 0 || Date.now() >= deadline)) {
        release();
        if (awaited.size > 0) {
          this.opts.log.warn("training without every game", { item: claim.id, missing: awaited.size });
        }
        this.spawn(claim, { run, folders, ...inputs });
        return;
      }
      if ("missing" in inputs && Date.now() >= deadline) {
        release();
        const error = `model ${inputs.missing} did not reach this node within ${Math.round(waitMs / 1000)} s`;
        this.report(claim, "fail", { error, retryDelayMs: retryDelayMs(claim.attempt) });
        return;
      }
      if (Date.now() - asked > 5_000) {
        asked = Date.now();
        this.opts.onData?.("missing" in inputs ? policy.models : policy.games);
      }
      await Bun.sleep(MODEL_POLL_MS);
    }
  }

  private spawn(
    claim: Claim,
    stage: {
      run: RunItem;
      folders: RunFolders;
      config: Record<string, unknown>;
      env: Record<string, string>;
    } | null,
  ): void {
    const template = this.opts.jobs[claim.type];
    const outputDir = join(this.opts.dataDir, "jobs", claim.id, `attempt-${claim.attempt}`);
    mkdirSync(outputDir, { recursive: true });
    const logFile = join(outputDir, JOB_LOG);
    let argv: string[];
    let env: Record<string, string>;
    try {
      if (!template) throw new Error(`no template for type "${claim.type}" on this node`);
      const context = { workId: claim.id, type: claim.type, attempt: claim.attempt, outputDir };
      const config = stage?.config ?? claim.config;
      argv = withSelf(jobArgv(template.command, config, context));
      env = { ...jobEnv(config, context, template.env), ...stage?.env };
    } catch (e) {
      this.report(claim, "fail", { error: (e as Error).message, retryDelayMs: 0 });
      return;
    }
    const log = openSync(logFile, "a");
    let proc: Subprocess;
    try {
      proc = Bun.spawn(argv, {
        cwd: template.cwd ?? outputDir,
        env,
        stdout: "pipe",
        stderr: log,
        stdin: "ignore",
        detached: true,
      });
    } catch (e) {
      // A missing program or folder: this attempt fails with the real reason; the batch's other claims go on.
      closeSync(log);
      this.report(claim, "fail", { error: `could not start the job: ${(e as Error).message}`, retryDelayMs: 0 });
      return;
    }
    const job: RunningJob = { claim, proc, slots: template.slots, outputDir, timers: [], stage };
    this.running.set(claim.id, job);
    // Only for reaping after a restart: a full disk costs that, not the job.
    this.jobRowWrites.run(() =>
      this.opts.db
        .insert(localJobs)
        .values({ itemId: claim.id, leaseId: claim.leaseId, pid: proc.pid, startedAt: Date.now(), logFile })
        .onConflictDoUpdate({ target: localJobs.itemId, set: { leaseId: claim.leaseId, pid: proc.pid } })
        .run(),
    );
    if (!stage) this.report(claim, "start", {});
    job.timers.push(setInterval(() => this.report(claim, "heartbeat", {}), this.opts.timing.workHeartbeatMs));
    job.timers.push(
      setTimeout(() => {
        this.opts.log.warn("job timed out", { item: claim.id, timeoutMs: claim.timeoutMs });
        killGroup(proc, "SIGTERM");
        job.timers.push(setTimeout(() => killGroup(proc, "SIGKILL"), KILL_GRACE_MS));
      }, claim.timeoutMs),
    );
    void this.watch(job, log);
  }

  /** Copies stdout to the job's log, keeps its last line, and reports the outcome when the process ends. */
  private async watch(job: RunningJob, log: number): Promise<void> {
    const { claim } = job;
    const proc = job.proc as Subprocess;
    let last = "";
    let partial = "";
    const decoder = new TextDecoder();
    const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
    // A descendant that left the group may hold stdout open: once the job exits, stop reading soon after.
    void proc.exited.then(() => setTimeout(() => void reader.cancel().catch(() => {}), OUTPUT_GRACE_MS));
    try {
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        writeSync(log, r.value);
        partial += decoder.decode(r.value, { stream: true });
        const lines = partial.split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) if (l.trim()) last = l;
        if (partial.length > MAX_RESULT_LINE) partial = "";
      }
    } catch (e) {
      // The log could not be written (disk full?): the job is stopped rather than run unobserved.
      this.opts.log.warn("job output lost", { item: claim.id, error: (e as Error).message });
      killGroup(proc, "SIGKILL");
    }
    if (partial.trim()) last = partial;
    const code = await proc.exited;
    closeSync(log);
    for (const t of job.timers) clearTimeout(t);
    this.running.delete(claim.id);
    this.jobRowWrites.run(() => this.opts.db.delete(localJobs).where(eq(localJobs.itemId, claim.id)).run());
    if (code === 0) {
      const parsed = parseResult(last);
      const result = "result" in parsed ? parsed.result : null;
      if (job.stage) await this.publish(job, result);
      else this.report(claim, "complete", { result, artifacts: await listArtifacts(job.outputDir) });
    } else {
      const error = proc.signalCode ? `killed by ${proc.signalCode}` : `exit code ${code}`;
      this.report(claim, "fail", { error, retryDelayMs: retryDelayMs(claim.attempt) });
    }
    void this.claimOnce();
  }

  /** A run's stage ended well: its outputs go into the run's folders, or the attempt fails saying what broke the contract. */
  private async publish(job: RunningJob, result: unknown): Promise<void> {
    const { claim } = job;
    const stage = job.stage as NonNullable<RunningJob["stage"]>;
    const hashFile = this.opts.hashFile ?? hashWhole;
    let published: Awaited<ReturnType<typeof publishStage>>;
    try {
      published = await publishStage(stage.run, result, job.outputDir, stage.folders, hashFile, (n) => n === JOB_LOG);
    } catch (e) {
      published = { error: `publishing the outputs failed: ${(e as Error).message}` };
    }
    if ("error" in published) {
      this.opts.log.warn("stage output refused", { item: claim.id, error: published.error });
      this.report(claim, "fail", { error: published.error, retryDelayMs: retryDelayMs(claim.attempt) });
      return;
    }
    if (published.moved) {
      const policy = this.opts.runs?.[stage.run.run];
      if (policy) this.opts.onData?.(published.moved === "games" ? policy.games : policy.models);
    }
    this.report(claim, "complete", { result: published.result, artifacts: await listArtifacts(job.outputDir) });
  }

  /** Queues a report durably; heartbeats replace an unsent older heartbeat for the same item. */
  private report(
    claim: Claim,
    kind: ReportKind,
    extra: { result?: unknown; artifacts?: string[]; error?: string; retryDelayMs?: number },
  ) {
    const body = { leaseId: claim.leaseId, ...extra };
    if (kind === "heartbeat") {
      const queued = this.opts.db.select().from(workOutbox).where(eq(workOutbox.itemId, claim.id)).all();
      if ([...queued, ...this.unsaved].some((r) => r.itemId === claim.id && r.kind === "heartbeat")) return;
    }
    this.unsaved.push({ itemId: claim.id, kind, body, createdAt: Date.now() });
    this.saveUnsaved();
    void this.flushOutbox();
  }

  /** Moves the reports kept in memory into the durable outbox, in order, when the disk takes them. */
  private saveUnsaved(): void {
    if (this.unsaved.length === 0) return;
    const rows = this.unsaved;
    if (this.outboxWrites.run(() => this.opts.db.insert(workOutbox).values(rows).run())) this.unsaved = [];
  }

  /** Sends queued reports oldest first; keeps those the leader did not acknowledge for the next try. */
  async flushOutbox(): Promise<void> {
    if (this.sending || Date.now() < this.nextOutboxAt) return;
    const leader = this.opts.leader();
    if (!leader) return;
    this.sending = true;
    try {
      this.saveUnsaved();
      const rows = this.opts.db.select().from(workOutbox).orderBy(asc(workOutbox.seq)).limit(64).all();
      for (const row of rows) {
        await this.deliver(leader, row);
        // A delete the disk refuses is retried by sending the report again; the leader answers a repeat.
        this.opts.db.delete(workOutbox).where(eq(workOutbox.seq, row.seq)).run();
      }
      // Newer than every outbox row: what the disk did not take still reaches the leader.
      for (let report = this.unsaved[0]; report; report = this.unsaved[0]) {
        await this.deliver(leader, report);
        // Saved to the outbox meanwhile, it is sent once more from there.
        this.unsaved = this.unsaved.filter((r) => r !== report);
      }
      this.outboxBackoffMs = 0;
    } catch (e) {
      this.outboxBackoffMs = Math.min(10_000, Math.max(200, this.outboxBackoffMs * 2));
      this.nextOutboxAt = Date.now() + this.outboxBackoffMs * (0.5 + Math.random());
      this.opts.log.debug("reports not delivered yet", { error: (e as Error).message });
    } finally {
      this.sending = false;
    }
  }

  private async deliver(leader: { id: string; address: string }, report: Report): Promise<void> {
    try {
      await this.opts.transport.request(leader, REPORT_ROUTES[report.kind], {
        params: { id: report.itemId },
        body: report.body as { leaseId: string },
        timeoutMs: this.opts.timing.syncTimeoutMs,
      });
    } catch (e) {
      // A stale lease (409) or a vanished item (404) is a final answer; anything else is tried again.
      const final = e instanceof CallError && e.kind === "http" && (e.status === 409 || e.status === 404);
      if (!final) throw e;
      this.opts.log.warn("report refused", { item: report.itemId, kind: report.kind, error: (e as Error).message });
      this.abandon(report.itemId, (report.body as { leaseId: string }).leaseId);
    }
  }

  /** The lease is no longer ours (expired, cancelled, reclaimed): stop the job instead of running beside its new holder. */
  private abandon(itemId: string, leaseId: string): void {
    const job = this.running.get(itemId);
    if (!job || job.claim.leaseId !== leaseId) return;
    this.opts.log.warn("stopping a job whose lease was refused", { item: itemId, lease: leaseId });
    for (const t of job.timers) clearTimeout(t);
    const proc = job.proc;
    if (!proc) {
      this.running.delete(itemId);
      return;
    }
    killGroup(proc, "SIGTERM");
    job.timers = [setTimeout(() => killGroup(proc, "SIGKILL"), KILL_GRACE_MS)];
  }

  /** Processes a previous run of this node started cannot be watched again: end them and report the attempt failed. */
  private reapOrphans(): void {
    for (const job of this.opts.db.select().from(localJobs).all()) {
      // After a reboot the pid may belong to someone else: only a process that carries our work id is ours.
      if (startedFor(job.pid, job.itemId)) {
        try {
          process.kill(-job.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      this.opts.db.delete(localJobs).where(eq(localJobs.itemId, job.itemId)).run();
      this.opts.db
        .insert(workOutbox)
        .values({
          itemId: job.itemId,
          kind: "fail",
          body: { leaseId: job.leaseId, error: "the node restarted while the job ran", retryDelayMs: 0 },
          createdAt: Date.now(),
        })
        .run();
      this.opts.log.warn("reaped a job from before the restart", { item: job.itemId, pid: job.pid });
    }
  }
}

/** A file's SHA-256, read in chunks so the event loop keeps turning (nodes pass their hashing workers instead). */
async function hashWhole(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

/** Whether `pid` is a process this node started for `itemId` (its environment names the item; Linux only). */
export function startedFor(pid: number, itemId: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(`P2P_WORK_ID=${itemId}`);
  } catch {
    return false;
  }
}

function killGroup(proc: Subprocess, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.pid, signal);
  } catch {
    proc.kill(signal);
  }
}
