import type { Timing } from "../config/timing.ts";
import type { Db } from "../db/client.ts";
import type { TraceStore } from "../db/traces.ts";
import { httpTransport } from "../net/peer-transport.ts";
import { errorText } from "../observability/guarded-write.ts";
import type { Logger } from "../observability/log.ts";
import type { Metrics } from "../observability/metrics.ts";
import { type Entry, type RaftMessage, SNAPSHOT_CHUNK_CHARS, type SnapshotChunk } from "./messages.ts";
import { type Clock, NotLeaderError, type RaftEffect, RaftNode } from "./raft.ts";
import { RefusedError } from "./refused.ts";
import { SqliteStorage } from "./sqlite-storage.ts";
import { type CommandDefinition, StateMachine } from "./state-machine.ts";
import type { LogWrite } from "./storage.ts";
import { type RaftTransport, raftOverPeers, type SendOutcome } from "./transport.ts";

const MAX_IN_FLIGHT = 256;
export const SNAPSHOT_CHUNK_TIMEOUT_MS = 10_000;

/** What a drain writes to the state machine: committed entries, or a received snapshot with its data. */
type StateChange = { type: "apply"; entries: Entry[] } | { type: "install-snapshot"; index: number; data: string };

/** Raised to whoever waits on a drain whose transaction failed; the drain's writes are tried again. */
export class WriteFailedError extends Error {}

/**
 * A proposal was appended here, but this node stopped leading (or stopped) before it was applied: it may still
 * commit under the next leader, or be replaced. Unlike `NotLeaderError` (refused before anything was appended),
 * the caller cannot tell whether it took effect, and may only repeat it if it is safe to repeat.
 */
export class OutcomeUnknownError extends Error {
  constructor(
    readonly leader: string | null,
    reason: string,
  ) {
    super(`${reason}; whether it took effect is unknown`);
    this.name = "OutcomeUnknownError";
  }
}

/** Time as the runtime sees it: the system's in a node, a virtual clock (per node, drifting) in the simulator. */
export interface RuntimeClock {
  now(): number;
  random(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Runs `fn` once the work already queued in this turn is done (`setImmediate` in a node). */
  defer(fn: () => void): void;
}

export const systemClock: RuntimeClock = {
  now: Date.now,
  random: Math.random,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  defer: (fn) => setImmediate(fn),
};

/**
 * Makes one batch durable: `write` runs inside one transaction, on disk when this returns, rolled back whole
 * if it throws. The simulator wraps it to fail writes, tear the last one at a crash, or lie about the fsync.
 */
export type Commit = (write: (tx: Db) => void) => void;

/**
 * Ordering bugs planted on purpose, so the simulator's tests can show a seed catches each; a node never sets
 * them. `ackBeforeFsync`: a voter's replies leave before its writes are durable. `applyBeforeCommit`: log
 * entries are applied as soon as they are written. `answerHeldAfterFailedDrain`: replies held for a drain whose
 * transaction failed are sent anyway.
 */
export interface RuntimeBugs {
  ackBeforeFsync?: boolean;
  applyBeforeCommit?: boolean;
  answerHeldAfterFailedDrain?: boolean;
}

export interface ConsensusOptions {
  nodeId: string;
  /** Every configured voter and its address; quorum is a majority of these. */
  voters: ReadonlyMap<string, string>;
  timing: Timing;
  secret: string;
  db: Db;
  traces: Pick<TraceStore, "record">;
  log: Logger;
  metrics: Metrics;
  commands: readonly CommandDefinition<unknown>[];
  onLeaderChange?: (leader: string | null, term: number) => void;
  /** Defaults: the system clock, signed HTTP, one SQLite transaction on `db`. */
  clock?: RuntimeClock;
  transport?: RaftTransport;
  commit?: Commit;
  /** Compact the log once `after` applied entries follow the last snapshot, keeping `keep` for slow followers. */
  compaction?: { after: number; keep: number };
  snapshotChunkChars?: number;
  /** Told of every entry applied here, once its transaction is durable, with what its command returned. */
  onApplied?: (entry: Entry, result: unknown) => void;
  /** Told of every snapshot installed here, once durable. */
  onInstalled?: (index: number) => void;
  bugs?: RuntimeBugs;
}

/**
 * One proposal made here, from `propose` to its applied result: settled by the drain whose transaction
 * applies its entry, by a failed write, or when this node stops leading the term it was proposed in.
 */
interface Proposal {
  term: number;
  resolve: (r: { index: number; term: number; result: unknown }) => void;
  reject: (e: Error) => void;
}

/**
 * Carries out the Raft core's decisions: makes the log durable before any message that depends on it
 * leaves, sends through its transport (deadline on each call, a bound on calls in flight), applies committed
 * entries to SQLite, records traces. Proposals arriving in one event-loop turn share one durable write,
 * and callers that `coalesce` share one entry. Its clock, transport and durable commit are injected, so the
 * simulator runs this very class.
 */
export class ConsensusRuntime {
  readonly raft: RaftNode;
  readonly state: StateMachine;
  private readonly storage: SqliteStorage;
  private readonly clock: RuntimeClock;
  private readonly transport: RaftTransport;
  private readonly commit: Commit;
  private readonly bugs: RuntimeBugs;
  private readonly compaction: { after: number; keep: number };
  private readonly chunkChars: number;
  /** Where each voter is reached: the cluster file's, then whatever configuration entries say. */
  private readonly addresses: Map<string, string>;
  private appliedIndex: number;
  private drainScheduled = false;
  /** Followers a snapshot is streaming to now. */
  private readonly snapshotsOut = new Set<string>();
  /** The snapshot arriving in pieces, and the complete one while the core decides on it. */
  private incoming: { key: string; total: number; parts: string[]; received: number } | null = null;
  private incomingData: string | null = null;
  /** Proposals made here and not settled yet, by log index. */
  private readonly proposals = new Map<number, Proposal>();
  /** Messages received and not answered yet: their replies wait for the drain that makes what they depend on durable. */
  private readonly requests = new Map<number, { replies: RaftMessage[]; answer: (o: SendOutcome) => void }>();
  private nextRequest = 1;
  /** Committed entries (or a snapshot) whose transaction failed: the next drain writes them first, in order. */
  private unapplied: StateChange[] = [];
  /** The last drain's failure, until a drain succeeds (logged when such a run starts and when it ends). */
  private writeFailure: WriteFailedError | null = null;
  /** Coalesced proposals waiting for this turn's drain (see `coalesce`). */
  private readonly flushes: Array<() => void> = [];
  private inFlight = 0;
  private readonly sent: (labels?: Record<string, string>, by?: number) => void;
  private readonly failed: (labels?: Record<string, string>, by?: number) => void;

  constructor(private readonly opts: ConsensusOptions) {
    const { db } = opts;
    this.clock = opts.clock ?? systemClock;
    this.transport =
      opts.transport ??
      raftOverPeers(httpTransport({ nodeId: opts.nodeId, secret: opts.secret }), (e) =>
        opts.log.error("a raft answer could not be handled", { error: errorText(e) }),
      );
    this.commit = opts.commit ?? ((write) => db.transaction((tx) => write(tx as unknown as Db)));
    this.bugs = opts.bugs ?? {};
    this.compaction = opts.compaction ?? { after: 10_000, keep: 1_000 };
    this.chunkChars = opts.snapshotChunkChars ?? SNAPSHOT_CHUNK_CHARS;
    this.storage = new SqliteStorage(db);
    this.addresses = new Map(opts.voters);
    this.state = new StateMachine(db, opts.commands, (entry, reason) =>
      opts.log.error("skipped a committed entry", { index: entry.index, command: entry.command.name, reason }),
    );
    this.appliedIndex = this.state.appliedIndex();
    const clock: Clock = {
      setTimeout: (fn: (...args: unknown[]) => void, ms: number) =>
        this.clock.setTimeout(() => {
          fn();
          this.drain();
        }, ms),
      clearTimeout: (handle: unknown) => this.clock.clearTimeout(handle),
    };
    this.raft = new RaftNode({
      id: opts.nodeId,
      voters: [...opts.voters].map(([id, address]) => ({ id, address })),
      storage: this.storage,
      timing: opts.timing,
      appliedIndex: this.appliedIndex,
      now: this.clock.now,
      random: this.clock.random,
      clock,
    });
    this.sent = opts.metrics.counter("p2p_raft_messages_sent_total", "Raft messages sent, by type");
    this.failed = opts.metrics.counter("p2p_raft_send_failures_total", "Raft sends that got no answer, by kind");
    opts.metrics.gauge("p2p_raft_term", "Current Raft term", () => this.raft.currentTerm);
    opts.metrics.gauge("p2p_raft_commit_index", "Highest committed log index", () => this.raft.committed);
    opts.metrics.gauge("p2p_raft_applied_index", "Highest applied log index", () => this.appliedIndex);
    opts.metrics.gauge("p2p_raft_is_leader", "1 on the leader", () => (this.raft.currentRole === "leader" ? 1 : 0));
  }

  start(): void {
    this.raft.start();
    this.drain();
  }

  stop(): void {
    this.raft.stop();
    this.drain();
    for (const p of this.proposals.values()) p.reject(new OutcomeUnknownError(null, "node stopped"));
    this.proposals.clear();
  }

  addressOf(id: string | null): string | null {
    return id ? (this.addresses.get(id) ?? null) : null;
  }

  get applied(): number {
    return this.appliedIndex;
  }

  /**
   * Handles messages from a voter; resolves with the replies once what they depend on is durable. The
   * work waits for this turn's drain, so what arrives in one turn shares one transaction and one fsync:
   * appends pipelined to a follower while it was writing, acknowledgements reaching a leader together
   * with new proposals.
   */
  receive(messages: readonly RaftMessage[]): Promise<RaftMessage[]> {
    return new Promise((resolve, reject) =>
      this.handle(messages, (o) => (o.ok ? resolve(o.messages) : reject(o.error))),
    );
  }

  /** `receive` for a transport that answers through a callback (the simulator's network). */
  handle(messages: readonly RaftMessage[], reply: (o: SendOutcome) => void): void {
    const request = this.openRequest(reply);
    for (const m of messages) this.raft.receive(m, request);
    this.scheduleDrain();
  }

  private openRequest(answer: (o: SendOutcome) => void): number {
    const request = this.nextRequest++;
    this.requests.set(request, { replies: [], answer });
    return request;
  }

  /** Answers every open request: with its replies once `written`, else with why not (where it has any). */
  private answerRequests(written: boolean): void {
    for (const { replies, answer } of this.requests.values()) {
      if (written || replies.length === 0 || this.bugs.answerHeldAfterFailedDrain)
        answer({ ok: true, messages: replies });
      else
        answer({ ok: false, kind: "write_failed", error: this.writeFailure ?? new WriteFailedError("write failed") });
    }
    this.requests.clear();
  }

  /** Takes one piece of a snapshot; the last piece hands the whole to the core, whose replies are returned. */
  receiveSnapshotChunk(c: SnapshotChunk): RaftMessage[] {
    const key = `${c.from}/${c.term}/${c.index}`;
    if (c.offset === 0) this.incoming = { key, total: c.total, parts: [], received: 0 };
    const inc = this.incoming;
    if (!inc || inc.key !== key || inc.received !== c.offset || inc.total !== c.total) {
      throw new RefusedError(
        409,
        "out_of_order",
        `snapshot piece at ${c.offset} does not continue the transfer in progress`,
      );
    }
    inc.parts.push(c.chunk);
    inc.received += c.chunk.length;
    if (inc.received < inc.total) return [];
    this.incoming = null;
    this.incomingData = inc.parts.join("");
    try {
      const { chunk: _c, offset: _o, total: _t, ...meta } = c;
      const answered: { outcome?: SendOutcome } = {};
      this.raft.receive(
        { type: "snapshot", ...meta },
        this.openRequest((o) => (answered.outcome = o)),
      );
      // Drained now: the install needs the data only this call holds.
      this.drain();
      const o = answered.outcome;
      // An acknowledgement would claim an install that did not happen (it is tried again with the next drain).
      if (!o?.ok) throw o?.error ?? new Error("snapshot install was not answered");
      return o.messages;
    } finally {
      this.incomingData = null;
    }
  }

  /** Commits a registered command; resolves once it is applied here, with what its apply returned. */
  propose(command: Entry["command"]): Promise<{ index: number; term: number; result: unknown }> {
    const problem = this.state.validate(command);
    if (problem) return Promise.reject(new RefusedError(422, "rejected", problem));
    return this.track(() => this.raft.propose(command));
  }

  /**
   * Group commit: calls made in one event-loop turn reach `run` together, just before that turn's
   * durable write, so they can share one entry; each caller gets its own element of what `run`
   * resolves to. `run` must propose before its first `await` to join the turn's write.
   */
  coalesce<I, R>(run: (items: I[]) => Promise<readonly R[]>, maxItems = 256): (item: I) => Promise<R> {
    let queue: Array<{ item: I; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
    const flush = () => {
      const batch = queue;
      queue = [];
      if (batch.length === 0) return;
      let results: Promise<readonly R[]>;
      try {
        results = run(batch.map((b) => b.item));
      } catch (e) {
        results = Promise.reject(e);
      }
      results.then(
        (rs) => {
          for (const [i, b] of batch.entries()) b.resolve(rs[i] as R);
        },
        (e) => {
          for (const b of batch) b.reject(e);
        },
      );
    };
    return (item) =>
      new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (queue.length >= maxItems) flush();
        else if (queue.length === 1) {
          this.flushes.push(flush);
          this.scheduleDrain();
        }
      });
  }

  /** Adds or removes one voter; resolves once the change is committed and applied here. */
  async changeVoters(change: { add: { id: string; address: string } } | { remove: string }) {
    const { index, term } = await this.track(() => this.raft.changeVoters(change));
    return { index, term };
  }

  /** Appends through the core and follows the entry until it is applied here (or its fate is lost). */
  private track(append: () => { index: number; term: number }) {
    let entry: { index: number; term: number };
    try {
      entry = append();
    } catch (e) {
      return Promise.reject(e);
    }
    this.scheduleDrain();
    return new Promise<{ index: number; term: number; result: unknown }>((resolve, reject) =>
      this.proposals.set(entry.index, { term: entry.term, resolve, reject }),
    );
  }

  /** Waits until a linearizable read may be served from local state, or says who can serve it. */
  linearizableIndex(): number {
    const read = this.raft.readIndex();
    if (!read.ok) throw read.error;
    if (this.appliedIndex < read.index) this.drain();
    return read.index;
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    this.clock.defer(() => {
      // Coalesced proposals join this drain's write (scheduling another drain meanwhile is a no-op).
      for (const flush of this.flushes.splice(0)) flush();
      this.drainScheduled = false;
      this.raft.flush();
      this.drain();
    });
  }

  /**
   * Durable first, then everything else, in the order the core decided it. New log entries, the hard
   * state, installed snapshots and entries to apply share one transaction: one fsync per batch. The one
   * exception: a leader's AppendEntries leave before its own write, so followers write in parallel with
   * it (Raft §10.2.1); the core counts the leader's own copy toward commit only once it is durable.
   */
  private drain(): void {
    // The write just made durable may complete a quorum (a lone voter's, or with the leader's own
    // copy): what the core decides then is carried out in the same drain.
    do this.drainOnce();
    while (this.raft.hasEffects);
    // Proposals of a term this node no longer leads: their fate is unknown here (they may still commit).
    if (this.proposals.size > 0) this.settleLost();
  }

  private settleLost(): void {
    const leading = this.raft.currentRole === "leader";
    for (const [index, p] of this.proposals) {
      if (leading && p.term === this.raft.currentTerm) continue;
      this.proposals.delete(index);
      p.reject(new OutcomeUnknownError(this.raft.leader, "leadership lost before the entry was applied"));
    }
  }

  private drainOnce(): void {
    const effects = this.raft.takeEffects();
    // Addresses first: an append may be for a voter that the same batch added.
    for (const effect of effects) {
      if (effect.type !== "config") continue;
      for (const v of effect.voters) this.addresses.set(v.id, v.address);
      this.opts.log.info("voters", { voters: effect.voters.map((v) => v.id) });
    }
    // A handover (timeout-now) vouches for nothing of this node's own log: it leaves even when the write fails.
    const early = (e: RaftEffect) =>
      e.type === "send" && (e.message.type === "append" || e.message.type === "timeout-now");
    for (const effect of effects) if (effect.type === "send" && early(effect)) this.send(effect.to, effect.message);
    const changes = this.unapplied;
    this.unapplied = [];
    let logWrite: LogWrite | null = null;
    for (const e of effects) {
      if (e.type === "persist") logWrite = e.write;
      else if (e.type === "reply") this.requests.get(e.request)?.replies.push(e.message);
      else if (e.type === "apply") changes.push(e);
      else if (e.type === "install-snapshot") {
        if (this.incomingData === null) throw new Error("snapshot installed without its data");
        changes.push({ type: e.type, index: e.index, data: this.incomingData });
      }
    }
    if (this.bugs.applyBeforeCommit) this.applyAhead(changes);
    if (this.bugs.ackBeforeFsync) this.answerRequests(true);
    const written = (logWrite === null && changes.length === 0) || this.write(logWrite, changes);
    this.answerRequests(written);
    for (const effect of effects) {
      switch (effect.type) {
        case "send":
          // Anything but an AppendEntries may vouch for what this drain wrote (a vote request, a reply).
          if (!early(effect) && written) this.send(effect.to, effect.message);
          break;
        case "send-snapshot":
          this.sendSnapshot(effect.to, effect.term, effect.sentAt);
          break;
        case "trace": {
          const r = effect.record;
          this.opts.traces.record(r);
          this.opts.log.info("raft role", { from: r.from, to: r.to, event: r.event, cause: r.cause });
          break;
        }
        case "leader":
          this.opts.log.info("leader", { leader: effect.leader, term: effect.term });
          this.opts.onLeaderChange?.(effect.leader, effect.term);
          break;
        case "persist":
        case "reply":
        case "apply":
        case "install-snapshot":
        case "config":
          break;
      }
    }
    if (this.appliedIndex - this.raft.snapshotIndex > this.compaction.after)
      this.raft.compact(this.appliedIndex - this.compaction.keep);
  }

  /** The planted `applyBeforeCommit` bug: everything in the log is applied now, and the core's applies skip it. */
  private applyAhead(changes: StateChange[]): void {
    let through = this.appliedIndex;
    for (const c of changes) {
      if (c.type === "install-snapshot") through = c.index;
      else {
        c.entries = c.entries.filter((e) => e.index > through);
        through = c.entries.at(-1)?.index ?? through;
      }
    }
    const ahead = this.raft.entries(through + 1, this.raft.lastIndex + 1, 1024);
    if (ahead.length > 0) changes.push({ type: "apply", entries: ahead });
  }

  /**
   * The batch's log writes, hard state, snapshot install and applies: one transaction, one fsync. Then
   * the core hears that its writes are durable, and proposers that their entries are applied.
   */
  private write(logWrite: LogWrite | null, changes: StateChange[]): boolean {
    const results = new Map<number, unknown>();
    const observe = this.opts.onApplied !== undefined;
    try {
      this.commit((tx) => {
        if (logWrite) this.storage.writeTo(tx, logWrite);
        for (const c of changes) {
          if (c.type === "apply") {
            this.state.applyIn(tx, c.entries, (index, result) => {
              if (observe || this.proposals.has(index)) results.set(index, result);
            });
          } else {
            this.state.restoreIn(tx, c.data, c.index);
          }
        }
      });
    } catch (e) {
      this.writeFailed(e, changes);
      return false;
    }
    if (this.writeFailure) this.opts.log.info("drain writes succeed again", { error: this.writeFailure.message });
    this.writeFailure = null;
    if (logWrite) this.storage.written(logWrite);
    this.raft.persisted(logWrite);
    for (const c of changes) {
      if (c.type === "install-snapshot") {
        this.appliedIndex = c.index;
        this.opts.onInstalled?.(c.index);
        continue;
      }
      for (const e of c.entries) {
        this.appliedIndex = e.index;
        const result = results.get(e.index);
        this.opts.onApplied?.(e, result);
        const p = this.proposals.get(e.index);
        if (!p) continue;
        this.proposals.delete(e.index);
        if (p.term === e.term) p.resolve({ index: e.index, term: e.term, result });
        else p.reject(new NotLeaderError(this.raft.leader, "entry replaced by another leader's"));
      }
    }
    return true;
  }

  /**
   * The transaction rolled back (a full or failing disk): nothing of it is durable. The core still holds
   * the log writes (it hands them out again) and the state changes are kept, both tried again by the next
   * drain; the core hears nothing, so no message claims what was not written. Whoever waits hears why now,
   * rather than at their deadline: every proposer here, and (by the caller) every voter waiting for a reply.
   */
  private writeFailed(e: unknown, changes: StateChange[]): void {
    const failure = new WriteFailedError(`this node could not write its log: ${errorText(e)}`);
    if (!this.writeFailure)
      this.opts.log.error("drain write failed; retrying with the next drain", { error: failure.message });
    this.writeFailure = failure;
    this.unapplied = changes;
    // Every proposal in flight, written or not: each is safe to retry, and may still commit.
    for (const p of this.proposals.values()) p.reject(failure);
    this.proposals.clear();
    // A leader that cannot write steps down now (its lease would otherwise hold off every other candidate);
    // after the rejections above, so its proposers hear the real reason first.
    this.raft.storageFailed(errorText(e));
  }

  /**
   * Streams the state machine as it is now, labelled with the applied index it reflects (not the older
   * compaction point), so the follower never re-applies an entry the snapshot already contains.
   */
  private sendSnapshot(to: string, term: number, sentAt: number): void {
    const address = this.addresses.get(to);
    if (!address || this.snapshotsOut.has(to)) return;
    const giveUp = (kind: string, error: unknown) => {
      this.snapshotsOut.delete(to);
      this.failed({ kind });
      this.opts.log.warn("snapshot transfer failed", { to, error: errorText(error) });
    };
    // Reading the state can fail too (a failing disk): like a failed send, it is logged and offered again.
    let data: string;
    let head: Omit<SnapshotChunk, "offset" | "chunk" | "total">;
    try {
      const index = this.appliedIndex;
      head = {
        from: this.opts.nodeId,
        term,
        index,
        lastTerm: this.raft.termAt(index) ?? 0,
        voters: this.raft.configAt(index),
        sentAt,
      };
      data = this.state.snapshot();
    } catch (e) {
      giveUp("error", e);
      return;
    }
    this.snapshotsOut.add(to);
    this.opts.log.info("sending snapshot", { to, index: head.index, chars: data.length });
    const piece = (offset: number) => {
      const chunk = { ...head, offset, total: data.length, chunk: data.slice(offset, offset + this.chunkChars) };
      this.transport.sendSnapshotChunk(to, address, chunk, SNAPSHOT_CHUNK_TIMEOUT_MS, (o) => {
        if (!o.ok) return giveUp(o.kind, o.error);
        if (offset + this.chunkChars < data.length) return piece(offset + this.chunkChars);
        this.snapshotsOut.delete(to);
        if (o.messages.length > 0) this.handle(o.messages, () => {});
      });
    };
    piece(0);
  }

  private send(to: string, message: RaftMessage): void {
    const address = this.addresses.get(to);
    if (!address || this.inFlight >= MAX_IN_FLIGHT) {
      this.failed({ kind: "overloaded" });
      return;
    }
    this.inFlight++;
    this.sent({ type: message.type });
    this.transport.send(to, address, [message], this.opts.timing.appendTimeoutMs, (o) => {
      this.inFlight--;
      if (!o.ok) this.failed({ kind: o.kind });
      else if (o.messages.length > 0) this.handle(o.messages, () => {});
    });
  }
}

export { NotLeaderError };
