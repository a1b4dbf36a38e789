import type { Timing } from "../config/timing.ts";
import type { Db } from "../db/client.ts";
import type { TraceStore } from "../db/traces.ts";
import { type CallError, call } from "../net/client.ts";
import { ROUTES } from "../net/route-table.ts";
import { errorText } from "../observability/guarded-write.ts";
import type { Logger } from "../observability/log.ts";
import type { Metrics } from "../observability/metrics.ts";
import { type Entry, type RaftMessage, SNAPSHOT_CHUNK_CHARS, type SnapshotChunk } from "./messages.ts";
import { type Clock, NotLeaderError, type RaftEffect, RaftNode } from "./raft.ts";
import { RefusedError } from "./refused.ts";
import { SqliteStorage } from "./sqlite-storage.ts";
import { type CommandDefinition, StateMachine } from "./state-machine.ts";

const MAX_IN_FLIGHT = 256;
/** Compact the log once this many applied entries follow the last snapshot, keeping a tail for slow followers. */
const COMPACT_AFTER = 10_000;
const COMPACT_KEEP = 1_000;
const SNAPSHOT_CHUNK_TIMEOUT_MS = 10_000;

/** What a drain writes to the state machine: committed entries, or a received snapshot with its data. */
type StateChange = { type: "apply"; entries: Entry[] } | { type: "install-snapshot"; index: number; data: string };

/** Raised to whoever waits on a drain whose transaction failed; the drain's writes are tried again. */
export class WriteFailedError extends Error {}

export interface ConsensusOptions {
  nodeId: string;
  /** Every configured voter and its address; quorum is a majority of these. */
  voters: ReadonlyMap<string, string>;
  timing: Timing;
  secret: string;
  db: Db;
  traces: TraceStore;
  log: Logger;
  metrics: Metrics;
  commands: readonly CommandDefinition<unknown>[];
  onLeaderChange?: (leader: string | null, term: number) => void;
}

/**
 * Carries out the Raft core's decisions: makes the log durable before any message that depends on it
 * leaves, sends over signed HTTP (deadline on each call, a bound on calls in flight), applies committed
 * entries to SQLite, records traces. Proposals arriving in one event-loop turn share one durable write,
 * and callers that `coalesce` share one entry.
 */
export class ConsensusRuntime {
  readonly raft: RaftNode;
  readonly state: StateMachine;
  private readonly storage: SqliteStorage;
  /** Where each voter is reached: the cluster file's, then whatever configuration entries say. */
  private readonly addresses: Map<string, string>;
  private appliedIndex: number;
  private drainScheduled = false;
  /** Followers a snapshot is streaming to now. */
  private readonly snapshotsOut = new Set<string>();
  /** The snapshot arriving in pieces, and the complete one while the core decides on it. */
  private incoming: { key: string; total: number; parts: string[]; received: number } | null = null;
  private incomingData: string | null = null;
  /** Results of applied entries that a local proposer awaits, by index. */
  private readonly results = new Map<number, unknown>();
  /** Proposals in flight here, by index, with how to tell each that its write failed. */
  private readonly awaited = new Map<number, (e: Error) => void>();
  /** Proposers whose entry is committed, waiting for the drain that applies it. */
  private applyWaiters: Array<{ index: number; resolve: () => void; reject: (e: Error) => void }> = [];
  /** Replies waiting for the drain that makes what they depend on durable. */
  private readonly held: Array<{
    replies: RaftMessage[];
    resolve: (replies: RaftMessage[]) => void;
    reject: (e: Error) => void;
  }> = [];
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
    this.storage = new SqliteStorage(opts.db);
    this.addresses = new Map(opts.voters);
    this.state = new StateMachine(opts.db, opts.commands, (entry, reason) =>
      opts.log.error("skipped a committed entry", { index: entry.index, command: entry.command.name, reason }),
    );
    this.appliedIndex = this.state.appliedIndex();
    const clock: Clock = {
      setTimeout: (fn: (...args: unknown[]) => void, ms: number) =>
        setTimeout(() => {
          fn();
          this.drain();
        }, ms),
      clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    };
    this.raft = new RaftNode({
      id: opts.nodeId,
      voters: [...opts.voters].map(([id, address]) => ({ id, address })),
      storage: this.storage,
      timing: opts.timing,
      appliedIndex: this.appliedIndex,
      now: Date.now,
      random: Math.random,
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
  }

  addressOf(id: string | null): string | null {
    return id ? (this.addresses.get(id) ?? null) : null;
  }

  /**
   * Handles messages from a voter; resolves with the replies once what they depend on is durable. The
   * work waits for this turn's drain, so what arrives in one turn shares one transaction and one fsync:
   * appends pipelined to a follower while it was writing, acknowledgements reaching a leader together
   * with new proposals.
   */
  receive(messages: readonly RaftMessage[]): Promise<RaftMessage[]> {
    const replies = messages.flatMap((m) => this.raft.receive(m));
    this.scheduleDrain();
    if (replies.length === 0) return Promise.resolve(replies);
    return new Promise((resolve, reject) => this.held.push({ replies, resolve, reject }));
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
      // Drained now: the install needs the data only this call holds.
      const replies = this.raft.receive({ type: "snapshot", ...meta });
      this.drain();
      // An acknowledgement would claim an install that did not happen (it is tried again with the next drain).
      if (this.writeFailure) throw this.writeFailure;
      return replies;
    } finally {
      this.incomingData = null;
    }
  }

  /** Commits a registered command; resolves once it is applied here, with what its apply returned. */
  async propose(command: Entry["command"]): Promise<{ index: number; term: number; result: unknown }> {
    const problem = this.state.validate(command);
    if (problem) throw new RefusedError(422, "rejected", problem);
    const before = this.raft.lastIndex;
    const pending = this.raft.propose(command);
    // A refused proposal appended nothing: it must not claim (and later clear) another proposal's index.
    if (this.raft.lastIndex === before) return pending.then(() => ({ index: 0, term: 0, result: undefined }));
    const index = this.raft.lastIndex;
    let writeFailed: (e: Error) => void = () => {};
    const failure = new Promise<never>((_, reject) => {
      writeFailed = reject;
    });
    failure.catch(() => {});
    this.awaited.set(index, writeFailed);
    this.scheduleDrain();
    try {
      const committed = await Promise.race([pending, failure]);
      await Promise.race([this.applied(committed.index), failure]);
      return { ...committed, result: this.results.get(index) };
    } finally {
      this.awaited.delete(index);
      this.results.delete(index);
    }
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
    const pending = this.raft.changeVoters(change);
    this.scheduleDrain();
    const result = await pending;
    await this.applied(result.index);
    return result;
  }

  /** Resolves once the entry at `index`, known committed, is applied here (by the drain that follows). */
  private applied(index: number): Promise<void> {
    if (this.appliedIndex >= index) return Promise.resolve();
    this.scheduleDrain();
    return new Promise((resolve, reject) => this.applyWaiters.push({ index, resolve, reject }));
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
    setImmediate(() => {
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
    for (const effect of effects)
      if (effect.type === "send" && early(effect)) void this.send(effect.to, effect.message);
    const changes = this.unapplied;
    this.unapplied = [];
    for (const e of effects) {
      if (e.type === "apply") changes.push(e);
      else if (e.type === "install-snapshot") {
        if (this.incomingData === null) throw new Error("snapshot installed without its data");
        changes.push({ type: e.type, index: e.index, data: this.incomingData });
      }
    }
    const written = !(this.storage.dirty || changes.length > 0) || this.write(changes);
    if (written) for (const h of this.held.splice(0)) h.resolve(h.replies);
    for (const effect of effects) {
      switch (effect.type) {
        case "send":
          // Anything but an AppendEntries may vouch for what this drain wrote (a vote request, a reply).
          if (!early(effect) && written) void this.send(effect.to, effect.message);
          break;
        case "send-snapshot":
          void this.sendSnapshot(effect.to, effect.term, effect.sentAt);
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
        case "apply":
        case "install-snapshot":
        case "config":
          break;
      }
    }
    if (this.appliedIndex - this.raft.snapshotIndex > COMPACT_AFTER)
      this.raft.compact(this.appliedIndex - COMPACT_KEEP);
  }

  /**
   * The batch's log writes, hard state, snapshot install and applies: one transaction, one fsync. Then
   * the core hears that its writes are durable, and proposers that their entries are applied.
   */
  private write(changes: StateChange[]): boolean {
    try {
      this.opts.db.transaction((tx) => {
        this.storage.writeTo(tx as unknown as Db);
        for (const c of changes) {
          if (c.type === "apply") {
            this.state.applyIn(tx as unknown as Db, c.entries, (index, result) => {
              if (this.awaited.has(index)) this.results.set(index, result);
            });
          } else {
            this.state.restoreIn(tx as unknown as Db, c.data, c.index);
          }
        }
      });
    } catch (e) {
      this.writeFailed(e, changes);
      return false;
    }
    if (this.writeFailure) this.opts.log.info("drain writes succeed again", { error: this.writeFailure.message });
    this.writeFailure = null;
    this.storage.persisted();
    this.raft.persisted();
    for (const c of changes) this.appliedIndex = c.type === "apply" ? (c.entries.at(-1) as Entry).index : c.index;
    if (this.applyWaiters.length > 0) {
      const ready = this.applyWaiters.filter((w) => w.index <= this.appliedIndex);
      this.applyWaiters = this.applyWaiters.filter((w) => w.index > this.appliedIndex);
      for (const w of ready) w.resolve();
    }
    return true;
  }

  /**
   * The transaction rolled back (a full or failing disk): nothing of it is durable. The log writes stay
   * buffered and the state changes are kept, both tried again by the next drain; the core hears nothing,
   * so no message claims what was not written. Whoever waits hears why now, rather than at their
   * deadline: a voter's replies and every proposer here.
   */
  private writeFailed(e: unknown, changes: StateChange[]): void {
    const failure = new WriteFailedError(`this node could not write its log: ${errorText(e)}`);
    if (!this.writeFailure)
      this.opts.log.error("drain write failed; retrying with the next drain", { error: failure.message });
    this.writeFailure = failure;
    this.unapplied = changes;
    for (const h of this.held.splice(0)) h.reject(failure);
    for (const w of this.applyWaiters.splice(0)) w.reject(failure);
    // Every proposal in flight, written or not: each is safe to retry, and may still commit.
    for (const reject of this.awaited.values()) reject(failure);
    // A leader that cannot write steps down now (its lease would otherwise hold off every other candidate);
    // after the rejections above, so its proposers hear the real reason first.
    this.raft.storageFailed(errorText(e));
  }

  /**
   * Streams the state machine as it is now, labelled with the applied index it reflects (not the older
   * compaction point), so the follower never re-applies an entry the snapshot already contains.
   */
  private async sendSnapshot(to: string, term: number, sentAt: number): Promise<void> {
    const address = this.addresses.get(to);
    if (!address || this.snapshotsOut.has(to)) return;
    this.snapshotsOut.add(to);
    const creds = { kind: "peer" as const, secret: this.opts.secret, nodeId: this.opts.nodeId };
    // Reading the state can fail too (a failing disk): like a failed send, it is logged and offered again.
    try {
      const index = this.appliedIndex;
      const lastTerm = this.raft.termAt(index) ?? 0;
      const voters = this.raft.configAt(index);
      const data = this.state.snapshot();
      this.opts.log.info("sending snapshot", { to, index, chars: data.length });
      for (let offset = 0; ; offset += SNAPSHOT_CHUNK_CHARS) {
        const chunk = data.slice(offset, offset + SNAPSHOT_CHUNK_CHARS);
        const body = {
          from: this.opts.nodeId,
          term,
          index,
          lastTerm,
          voters,
          sentAt,
          offset,
          total: data.length,
          chunk,
        };
        const answer = (await call(address, ROUTES.peerRaftSnapshot, creds, {
          body,
          timeoutMs: SNAPSHOT_CHUNK_TIMEOUT_MS,
          to,
        })) as { messages?: RaftMessage[] };
        if (offset + SNAPSHOT_CHUNK_CHARS >= data.length) {
          if (answer.messages?.length) void this.receive(answer.messages);
          return;
        }
      }
    } catch (e) {
      this.failed({ kind: (e as CallError).kind ?? "error" });
      this.opts.log.warn("snapshot transfer failed", { to, error: (e as Error).message });
    } finally {
      this.snapshotsOut.delete(to);
    }
  }

  private async send(to: string, message: RaftMessage): Promise<void> {
    const address = this.addresses.get(to);
    if (!address || this.inFlight >= MAX_IN_FLIGHT) {
      this.failed({ kind: "overloaded" });
      return;
    }
    this.inFlight++;
    this.sent({ type: message.type });
    try {
      const answer = (await call(
        address,
        ROUTES.peerRaft,
        { kind: "peer", secret: this.opts.secret, nodeId: this.opts.nodeId },
        { body: { messages: [message] }, timeoutMs: this.opts.timing.appendTimeoutMs, to },
      )) as { messages?: RaftMessage[] };
      if (answer.messages?.length) void this.receive(answer.messages);
    } catch (e) {
      this.failed({ kind: (e as CallError).kind ?? "error" });
    } finally {
      this.inFlight--;
    }
  }
}

export { NotLeaderError };
