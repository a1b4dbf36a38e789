import { type ActorOptions, type AnyActorLogic, type AnyActorRef, createActor, type InspectionEvent } from "xstate";
import type { Timing } from "../config/timing.ts";
import { type Role, type RoleEffect, type RoleEvent, raftRoleMachine } from "../machines/raft-role.ts";
import { MAX_COUNTER } from "../net/bounds.ts";
import type { TraceRecord } from "../observability/trace.ts";
import { type Entry, MAX_ENTRIES_PER_APPEND, type RaftMessage, unsafeCounters } from "./messages.ts";
import { RaftLog } from "./raft-log.ts";
import { RefusedError } from "./refused.ts";
import type { LogWrite, RaftStorage, Voter } from "./storage.ts";

/** The entry that changes the voters; it takes effect as soon as it is in a log (Raft thesis §4.1). */
export const CONFIG_COMMAND = "raft.config";

/**
 * Raft among the configured voters, as a deterministic core: it reads its clock through `now`, its
 * randomness through `random`, and runs its role machine's timers on the injected `clock`. It does no I/O:
 * everything it does (log writes to make durable, messages, replies, entries to apply, traces) is an effect
 * queued for the runtime, which must drain them right after each call. Quorum is a majority of the
 * configured voters, never of those that seem alive.
 */
export type Clock = NonNullable<ActorOptions<AnyActorLogic>["clock"]>;

export type RaftTiming = Pick<
  Timing,
  "heartbeatMs" | "electionMinMs" | "electionMaxMs" | "leaseMs" | "appendTimeoutMs"
>;

export interface RaftOptions {
  id: string;
  /** The voters of the cluster file; the log's configuration entries and snapshots override them. */
  voters: readonly Voter[];
  /** The log as it is on disk at start; the core reads it, and its writes leave as `persist` effects. */
  storage: RaftStorage;
  timing: RaftTiming;
  /** Highest index already applied to the state machine (it survives restarts with the state). */
  appliedIndex: number;
  now: () => number;
  random: () => number;
  clock?: Clock;
}

export type RaftEffect =
  /** Make these log changes durable; then call `persisted` (before anything that depends on them leaves). */
  | { type: "persist"; write: LogWrite }
  | { type: "send"; to: string; message: RaftMessage }
  /** An answer to the message `receive` was given with this `request`; it vouches for this drain's write. */
  | { type: "reply"; request: number; message: RaftMessage }
  /** Send the state machine's snapshot (at `index`, whose entry had `lastTerm`) to a follower. */
  | { type: "send-snapshot"; to: string; term: number; index: number; lastTerm: number; sentAt: number }
  /** Replace the state machine with the snapshot just received (its data is with the runtime). */
  | { type: "install-snapshot"; index: number; lastTerm: number }
  | { type: "apply"; entries: Entry[] }
  | { type: "trace"; record: TraceRecord }
  | { type: "leader"; leader: string | null; term: number }
  /** The voters changed (an entry was appended, truncated or installed). */
  | { type: "config"; voters: Voter[] };

export class NotLeaderError extends Error {
  constructor(
    readonly leader: string | null,
    reason = "not the leader",
  ) {
    super(reason);
    this.name = "NotLeaderError";
  }
}

/** AppendEntries with entries a leader keeps in flight per follower (pipelining, as etcd does). */
const MAX_INFLIGHT = 4;

interface Progress {
  /** Next index to send; advanced optimistically as batches leave. */
  next: number;
  match: number;
  /** Batches in flight: the last index each carried and when it counts as lost. */
  inflight: Array<{ last: number; deadline: number }>;
  /** A snapshot is on its way to this follower until then. */
  snapshotUntil: number;
  /** Leader-clock send time of the newest AppendEntries this follower acknowledged. */
  ackedAt: number;
}

export class RaftNode {
  readonly id: string;
  private readonly log: RaftLog;
  /** Voters in force at the snapshot (or from the cluster file), then every configuration entry after it. */
  private baseConfig: Voter[];
  private configLog: Array<{ index: number; voters: Voter[] }> = [];
  private voterIds: string[] = [];
  private readonly timing: RaftTiming;
  /** The election minimum in force: the profile's, or more when round trips are long. */
  private electionMinMs: number;
  private readonly now: () => number;
  private readonly actor: AnyActorRef;
  private term: number;
  private votedFor: string | null;
  private leaderId: string | null = null;
  private commitIndex: number;
  private lastApplied: number;
  private role: Role = "follower";
  private votes = new Set<string>();
  private readonly progress = new Map<string, Progress>();
  private leaderContactAt = Number.NEGATIVE_INFINITY;
  /** First index of this leader's term: reads are linearizable only once it is committed. */
  private termStartIndex = 0;
  private transferTarget: string | null = null;
  private transferDeadline = 0;
  private outbox: RaftEffect[] = [];
  /** Why the runtime could not make the last writes durable, until a write succeeds. */
  private storageFailure: string | null = null;
  lastElectionCause = "";

  constructor(opts: RaftOptions) {
    this.id = opts.id;
    this.log = new RaftLog(opts.storage);
    this.baseConfig = this.log.snapshot().voters ?? [...opts.voters];
    this.scanConfig(this.log.snapshot().index + 1);
    this.timing = opts.timing;
    this.electionMinMs = opts.timing.electionMinMs;
    this.now = opts.now;
    const hard = this.log.hardState();
    this.term = hard.term;
    this.votedFor = hard.votedFor;
    this.commitIndex = Math.min(opts.appliedIndex, this.log.lastIndex());
    this.lastApplied = this.commitIndex;
    let previous: Role = "follower";
    this.actor = createActor(raftRoleMachine, {
      input: {
        electionMinMs: opts.timing.electionMinMs,
        electionMaxMs: opts.timing.electionMaxMs,
        heartbeatMs: opts.timing.heartbeatMs,
        random: opts.random,
        voter: this.voterIds.includes(opts.id),
      },
      clock: opts.clock,
      inspect: (ev: InspectionEvent) => {
        if (ev.type !== "@xstate.microstep" || ev.rootId !== ev.actorRef.sessionId) return;
        const to = roleOf(ev.snapshot as unknown as { value: unknown });
        if (to === previous) return; // a leader's heartbeat re-entering itself is not news
        const event = ev.event as RoleEvent | { type: string };
        const cause = "cause" in event ? event.cause : this.timerCause(event.type);
        if (to === "pre-candidate" || to === "candidate" || to === "leader") this.lastElectionCause = cause;
        this.outbox.push({
          type: "trace",
          record: { machine: "raft", instance: this.id, from: previous, to, event: event.type, cause, at: this.now() },
        });
        previous = to;
        this.role = to;
      },
    });
    this.actor.on("*", (effect: RoleEffect) => this.onRoleEffect(effect));
  }

  start(): void {
    this.outbox.push({
      type: "trace",
      record: {
        machine: "raft",
        instance: this.id,
        from: null,
        to: "follower",
        event: "start",
        cause: `started in term ${this.term} with log to ${this.log.lastIndex()}, applied to ${this.lastApplied}`,
        at: this.now(),
      },
    });
    this.actor.start();
  }

  stop(): void {
    this.actor.stop();
  }

  // ---- views --------------------------------------------------------------------------------

  get currentTerm(): number {
    return this.term;
  }

  get currentRole(): Role {
    return this.role;
  }

  get leader(): string | null {
    return this.leaderId;
  }

  get committed(): number {
    return this.commitIndex;
  }

  get lastIndex(): number {
    return this.log.lastIndex();
  }

  get voters(): readonly string[] {
    return this.voterIds;
  }

  get config(): Voter[] {
    return this.configLog.at(-1)?.voters ?? this.baseConfig;
  }

  quorum(): number {
    return Math.floor(this.voterIds.length / 2) + 1;
  }

  /** When this leader's lease ends: a majority (itself included) acknowledged it within `leaseMs` before. */
  leaseExpiresAt(): number {
    if (this.role !== "leader") return 0;
    return this.majorityAckAt() + this.timing.leaseMs;
  }

  /** Whether this node may act as the one leader now; a leader handing over gives its lease up. */
  holdsLease(): boolean {
    return this.role === "leader" && this.transferTarget === null && this.now() < this.leaseExpiresAt();
  }

  matchIndexes(): Record<string, number> {
    const out: Record<string, number> = { [this.id]: this.log.lastIndex() };
    for (const [peer, p] of this.progress) out[peer] = p.match;
    return out;
  }

  get hasEffects(): boolean {
    return this.outbox.length > 0;
  }

  /** The effects queued since the last call, led by the log writes made meanwhile (if any). */
  takeEffects(): RaftEffect[] {
    const write = this.log.pendingWrite();
    const out: RaftEffect[] = write ? [{ type: "persist", write }, ...this.outbox] : this.outbox;
    this.outbox = [];
    return out;
  }

  // ---- client API ---------------------------------------------------------------------------

  /**
   * Appends a command and says where; the runtime follows it from there (it is committed when an `apply`
   * effect carries it with this term). Throws `NotLeaderError` where this node may not append.
   */
  propose(command: Entry["command"]): { index: number; term: number } {
    if (this.role !== "leader") throw new NotLeaderError(this.leaderId);
    if (this.transferTarget) throw new NotLeaderError(this.leaderId, "leadership transfer under way");
    if (!this.holdsLease()) {
      throw new NotLeaderError(this.id, "leader lease lapsed (no majority acknowledged it recently)");
    }
    const index = this.log.lastIndex() + 1;
    this.log.append([{ index, term: this.term, command }]);
    this.noteConfig(index, command);
    if (this.voterIds.length === 1) this.advanceCommit();
    return { index, term: this.term };
  }

  /**
   * The runtime's write succeeded, with the last `persist` effect's log changes if it had any: a leader's own new
   * entries now count toward commit.
   */
  persisted(write: LogWrite | null): void {
    if (write) this.log.persisted(write);
    if (this.storageFailure !== null) {
      this.storageFailure = null;
      this.actor.send({ type: "storage-ok", cause: "this node's log writes succeed again" });
    }
    if (this.role === "leader") this.advanceCommit();
  }

  /**
   * The runtime could not make a `persist` effect's write durable (a full or failing disk). A leader steps down at
   * once, handing over to its most caught-up follower, rather than hold the lease while it cannot write;
   * until a write succeeds this node neither campaigns nor takes a transfer (it could not persist a vote).
   */
  storageFailed(cause: string): void {
    if (this.storageFailure !== null) return;
    this.storageFailure = cause;
    const successor = this.role === "leader" ? this.mostCaughtUpFollower() : null;
    this.actor.send({ type: "storage-failed", cause: `this node cannot write its log: ${cause}` });
    if (successor) this.send(successor, { type: "timeout-now", from: this.id, term: this.term });
  }

  /** Sends pending entries to every follower that has no AppendEntries in flight; call after proposing. */
  flush(): void {
    if (this.role !== "leader") return;
    for (const peer of this.progress.keys()) this.sendAppend(peer, false);
  }

  /**
   * The index a linearizable read must see, or why it cannot be served here: only a leader whose lease
   * holds and whose own term's first entry is committed knows that nothing newer was committed elsewhere.
   */
  readIndex(): { ok: true; index: number } | { ok: false; error: NotLeaderError } {
    if (this.role !== "leader") return { ok: false, error: new NotLeaderError(this.leaderId) };
    if (!this.holdsLease()) {
      return {
        ok: false,
        error: new NotLeaderError(this.id, "leader lease not held (no recent majority, or handing over)"),
      };
    }
    if (this.commitIndex < this.termStartIndex) {
      return { ok: false, error: new NotLeaderError(this.id, "new leader has not committed its first entry yet") };
    }
    return { ok: true, index: this.commitIndex };
  }

  /** Widens (or restores) the election window; never below the profile's, so the lease stays safe. */
  setElectionWindow(minMs: number, maxMs: number, cause: string): void {
    const min = Math.max(this.timing.electionMinMs, minMs);
    if (min === this.electionMinMs) return;
    this.electionMinMs = min;
    this.actor.send({ type: "election-window", minMs: min, maxMs: Math.max(min, maxMs), cause });
  }

  get electionWindowMs(): number {
    return this.electionMinMs;
  }

  stepDown(cause: string): void {
    if (this.role === "leader") this.actor.send({ type: "step-down", cause });
  }

  /** Hands leadership to `to` once its log has caught up; refuses proposals meanwhile. */
  transferTo(to: string): void {
    if (this.role !== "leader") throw new NotLeaderError(this.leaderId);
    if (to === this.id) return;
    if (!this.progress.has(to)) throw new RefusedError(422, "rejected", `raft: ${to} is not a voter`);
    this.transferTarget = to;
    this.transferDeadline = this.now() + this.timing.electionMinMs;
    this.maybeSendTimeoutNow();
    this.sendAppend(to, false);
  }

  // ---- messages -----------------------------------------------------------------------------

  /** Handles one message; its replies leave as `reply` effects tagged with `request`. */
  receive(m: RaftMessage, request: number): void {
    for (const message of this.answer(m)) this.outbox.push({ type: "reply", request, message });
  }

  private answer(m: RaftMessage): RaftMessage[] {
    // The wire schema bounds these already; a term past MAX_COUNTER would leave no room to campaign above it.
    const unsafe = unsafeCounters(m);
    if (unsafe !== null) {
      this.note("refused-message", `${m.type} from ${m.from} refused: ${unsafe}`);
      return [];
    }
    // Only members may campaign here; any leader may replicate to us (so a newly added voter catches up).
    if ((m.type === "pre-vote" || m.type === "vote") && !this.voterIds.includes(m.from)) return [];
    if (m.term > this.term) {
      if (m.type === "pre-vote") return [this.answerPreVote(m)];
      if (m.type === "vote" && !m.transfer && this.heardLeaderRecently()) {
        // A leader's lease is in force here: this candidate cannot win, and must not raise our term.
        return [{ type: "vote-reply", from: this.id, term: this.term, granted: false }];
      }
      if (m.type === "pre-vote-reply" && m.granted) {
        // A granted pre-vote echoes the term we would campaign for; it is not a newer term.
      } else {
        const leader = m.type === "append" || m.type === "snapshot" ? m.from : null;
        this.adoptTerm(m.term, leader, `${m.type} from ${m.from} carried term ${m.term}`);
      }
    } else if (m.term < this.term) {
      switch (m.type) {
        case "pre-vote":
          return [{ type: "pre-vote-reply", from: this.id, term: this.term, granted: false }];
        case "vote":
          return [{ type: "vote-reply", from: this.id, term: this.term, granted: false }];
        case "append":
          // Tells a deposed leader our term, so it steps down.
          return [this.appendReply(false, 0, this.log.lastIndex() + 1, m.sentAt)];
        case "snapshot":
          return [{ type: "snapshot-reply", from: this.id, term: this.term, index: 0, sentAt: m.sentAt }];
        default:
          return [];
      }
    }
    switch (m.type) {
      case "pre-vote":
        return [this.answerPreVote(m)];
      case "pre-vote-reply":
        this.countVote(m.from, m.granted, "pre-candidate", m.term === this.term + 1);
        return [];
      case "vote":
        return [this.answerVote(m)];
      case "vote-reply":
        this.countVote(m.from, m.granted, "candidate", m.term === this.term);
        return [];
      case "append":
        return [this.answerAppend(m)];
      case "append-reply":
        this.onAppendReply(m);
        return [];
      case "timeout-now":
        if (this.role === "follower")
          this.actor.send({ type: "timeout-now", cause: `leadership transfer from ${m.from}` });
        return [];
      case "snapshot":
        return [this.answerSnapshot(m)];
      case "snapshot-reply":
        this.onSnapshotReply(m);
        return [];
    }
  }

  private answerSnapshot(m: Extract<RaftMessage, { type: "snapshot" }>): RaftMessage {
    this.leaderContactAt = this.now();
    if (this.leaderId !== m.from) this.setLeader(m.from);
    this.actor.send({ type: "heard-leader", cause: `snapshot from leader ${m.from} in term ${m.term}` });
    if (m.index > this.commitIndex) {
      this.log.installSnapshot({ index: m.index, term: m.lastTerm, voters: m.voters });
      this.baseConfig = m.voters;
      this.configLog = [];
      this.scanConfig(m.index + 1);
      this.outbox.push({ type: "install-snapshot", index: m.index, lastTerm: m.lastTerm });
      this.commitIndex = m.index;
      this.lastApplied = m.index;
    }
    return { type: "snapshot-reply", from: this.id, term: this.term, index: this.commitIndex, sentAt: m.sentAt };
  }

  private onSnapshotReply(m: Extract<RaftMessage, { type: "snapshot-reply" }>): void {
    const p = this.progress.get(m.from);
    if (this.role !== "leader" || !p) return;
    p.ackedAt = this.acknowledgedAt(p, m.sentAt);
    p.snapshotUntil = 0;
    if (m.index > 0) {
      p.match = Math.max(p.match, m.index);
      p.next = p.match + 1;
      p.inflight = [];
    }
    this.sendAppend(m.from, false);
  }

  /** Forgets log entries up to `index`, which the state machine already holds (the runtime decides when). */
  compact(index: number): void {
    if (index > this.lastApplied) throw new Error(`raft: cannot compact past the applied index ${this.lastApplied}`);
    const voters = this.configAt(index);
    this.log.compact(index, voters);
    this.baseConfig = voters;
    this.configLog = this.configLog.filter((c) => c.index > index);
  }

  /** The voters in force at `index` (as of the latest configuration entry at or before it). */
  configAt(index: number): Voter[] {
    return this.configLog.filter((c) => c.index <= index).at(-1)?.voters ?? this.baseConfig;
  }

  /**
   * Adds or removes one voter (Raft thesis §4.1: one at a time, and only once this leader has committed
   * an entry of its term). The change takes effect as soon as the entry is appended.
   */
  changeVoters(change: { add: Voter } | { remove: string }): { index: number; term: number } {
    if (this.role !== "leader") throw new NotLeaderError(this.leaderId);
    const refuse = (why: string): never => {
      throw new RefusedError(422, "rejected", why);
    };
    if (this.commitIndex < this.termStartIndex) return refuse("the new leader has not committed its first entry yet");
    const pending = this.configLog.at(-1);
    if (pending && pending.index > this.commitIndex) return refuse("another voter change is still being committed");
    const current = this.config;
    let next: Voter[];
    if ("add" in change) {
      if (current.some((v) => v.id === change.add.id)) return refuse(`${change.add.id} is already a voter`);
      next = [...current, change.add];
    } else {
      if (change.remove === this.id) return refuse("the leader cannot remove itself: transfer leadership first");
      if (!current.some((v) => v.id === change.remove)) return refuse(`${change.remove} is not a voter`);
      next = current.filter((v) => v.id !== change.remove);
    }
    return this.propose({ name: CONFIG_COMMAND, payload: { voters: next } });
  }

  get snapshotIndex(): number {
    return this.log.snapshot().index;
  }

  termAt(index: number): number | undefined {
    return this.log.termAt(index);
  }

  /** Entries with from <= index < to, at most `limit`, whether durable yet or not. */
  entries(from: number, to: number, limit: number): Entry[] {
    return this.log.entries(from, to, limit);
  }

  private answerPreVote(m: Extract<RaftMessage, { type: "pre-vote" }>): RaftMessage {
    const granted =
      m.term > this.term && this.logUpToDate(m.lastLogIndex, m.lastLogTerm) && !this.heardLeaderRecently();
    return { type: "pre-vote-reply", from: this.id, term: granted ? m.term : this.term, granted };
  }

  private answerVote(m: Extract<RaftMessage, { type: "vote" }>): RaftMessage {
    const granted =
      (this.votedFor === null || this.votedFor === m.from) && this.logUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (granted && this.votedFor !== m.from) {
      this.votedFor = m.from;
      this.persistHardState();
    }
    if (granted) this.actor.send({ type: "granted-vote", cause: `voted for ${m.from} in term ${this.term}` });
    return { type: "vote-reply", from: this.id, term: this.term, granted };
  }

  private answerAppend(m: Extract<RaftMessage, { type: "append" }>): RaftMessage {
    this.leaderContactAt = this.now();
    if (this.leaderId !== m.from) this.setLeader(m.from);
    this.actor.send({ type: "heard-leader", cause: `append from leader ${m.from} in term ${m.term}` });
    if (m.prevLogIndex < this.commitIndex) {
      // Everything up to our commit index matches every leader's log (and may be compacted here): skip it.
      const prevLogIndex = this.commitIndex;
      const prevLogTerm = this.log.termAt(prevLogIndex) ?? 0;
      m = { ...m, prevLogIndex, prevLogTerm, entries: m.entries.filter((e) => e.index > prevLogIndex) };
    }
    const last = this.log.lastIndex();
    if (m.prevLogIndex > last) return this.appendReply(false, 0, last + 1, m.sentAt);
    const prevTerm = this.log.termAt(m.prevLogIndex);
    if (prevTerm !== m.prevLogTerm) return this.appendReply(false, 0, this.conflictHint(m.prevLogIndex), m.sentAt);
    let i = 0;
    for (; i < m.entries.length; i++) {
      const e = m.entries[i] as Entry;
      const existing = this.log.termAt(e.index);
      if (existing === undefined) break;
      if (existing !== e.term) {
        if (e.index <= this.commitIndex) throw new Error(`raft: refusing to truncate committed index ${e.index}`);
        this.log.truncateFrom(e.index);
        this.configLog = this.configLog.filter((c) => c.index < e.index);
        this.refreshConfig();
        break;
      }
    }
    if (i < m.entries.length) {
      const fresh = m.entries.slice(i);
      this.log.append(fresh);
      for (const e of fresh) this.noteConfig(e.index, e.command);
    }
    const match = m.prevLogIndex + m.entries.length;
    const newCommit = Math.min(m.leaderCommit, match);
    if (newCommit > this.commitIndex) {
      this.commitIndex = newCommit;
      this.applyCommitted();
    }
    return this.appendReply(true, match, 0, m.sentAt);
  }

  private appendReply(success: boolean, matchIndex: number, hintIndex: number, sentAt: number): RaftMessage {
    return { type: "append-reply", from: this.id, term: this.term, success, matchIndex, hintIndex, sentAt };
  }

  /** The first index of the term that conflicts at `index` (never below the commit), so the leader skips a whole term. */
  private conflictHint(index: number): number {
    const conflicting = this.log.termAt(index);
    let i = index;
    while (i - 1 > this.commitIndex && this.log.termAt(i - 1) === conflicting) i--;
    return Math.max(1, i);
  }

  private onAppendReply(m: Extract<RaftMessage, { type: "append-reply" }>): void {
    const p = this.progress.get(m.from);
    if (this.role !== "leader" || !p) return;
    p.ackedAt = this.acknowledgedAt(p, m.sentAt);
    if (m.success) {
      // Never past our own log: a reply claiming more would stall this follower's replication, not help it.
      p.match = Math.max(p.match, Math.min(m.matchIndex, this.log.lastIndex()));
      p.next = Math.max(p.next, p.match + 1);
      p.inflight = p.inflight.filter((b) => b.last > p.match);
      this.advanceCommit();
      this.maybeSendTimeoutNow();
    } else if (m.hintIndex > 0) {
      // Back to probing from the follower's hint: whatever else is in flight was sent from a wrong guess.
      p.next = Math.max(p.match + 1, Math.min(p.next - 1, m.hintIndex));
      p.inflight = [];
    }
    this.sendAppend(m.from, false);
  }

  private countVote(from: string, granted: boolean, phase: "pre-candidate" | "candidate", current: boolean): void {
    if (this.role !== phase || !current || !granted || !this.voterIds.includes(from)) return;
    this.votes.add(from);
    this.checkVotes(phase);
  }

  private checkVotes(phase: "pre-candidate" | "candidate"): void {
    if (this.votes.size < this.quorum()) return;
    const who = [...this.votes].sort().join(",");
    const total = this.voterIds.length;
    if (phase === "pre-candidate") {
      this.actor.send({
        type: "pre-vote-won",
        cause: `pre-votes from ${who} of ${total} voters for term ${this.term + 1}`,
      });
    } else {
      this.actor.send({ type: "vote-won", cause: `votes from ${who} of ${total} voters in term ${this.term}` });
    }
  }

  // ---- role effects -------------------------------------------------------------------------

  /** True (and traced) when the term cannot grow by one more and stay exact: this node must not campaign. */
  private termExhausted(): boolean {
    if (this.term < MAX_COUNTER) return false;
    this.note("term-exhausted", `term ${this.term} has no room for another election (at most ${MAX_COUNTER})`);
    return true;
  }

  /** `sentAt` echoes this leader's own clock, so a time ahead of it (which would stretch the lease) is not believed. */
  private acknowledgedAt(p: Progress, sentAt: number): number {
    return Math.max(p.ackedAt, Math.min(sentAt, this.now()));
  }

  /** Traces something this node declined to do, without a change of role. */
  private note(event: string, cause: string): void {
    this.outbox.push({
      type: "trace",
      record: { machine: "raft", instance: this.id, from: this.role, to: this.role, event, cause, at: this.now() },
    });
  }

  private onRoleEffect(effect: RoleEffect): void {
    switch (effect.type) {
      case "become-follower":
        // A leader that steps down no longer names itself: callers look for the next one.
        if (this.leaderId === this.id) this.setLeader(null);
        this.progress.clear();
        this.transferTarget = null;
        return;
      case "start-pre-vote":
        if (this.termExhausted()) return;
        this.votes = new Set([this.id]);
        this.broadcast({ type: "pre-vote", from: this.id, term: this.term + 1, ...this.lastLog() });
        this.checkVotes("pre-candidate");
        return;
      case "start-election":
        if (this.termExhausted()) return;
        this.term += 1;
        this.votedFor = this.id;
        this.persistHardState();
        this.setLeader(null);
        this.votes = new Set([this.id]);
        this.broadcast({ type: "vote", from: this.id, term: this.term, ...this.lastLog(), transfer: effect.transfer });
        this.checkVotes("candidate");
        return;
      case "become-leader":
        this.becomeLeader();
        return;
      case "send-heartbeats":
        this.heartbeat();
        return;
    }
  }

  private becomeLeader(): void {
    const now = this.now();
    this.setLeader(this.id);
    const next = this.log.lastIndex() + 1;
    this.progress.clear();
    this.syncProgress(next, now);
    // A no-op of our own term: committing it commits everything before it (Raft §5.4.2).
    this.termStartIndex = next;
    this.log.append([{ index: next, term: this.term, command: { name: "noop", payload: null } }]);
    if (this.voterIds.length === 1) this.advanceCommit();
  }

  private heartbeat(): void {
    const now = this.now();
    if (now - this.majorityAckAt() > this.electionMinMs) {
      this.actor.send({
        type: "lease-lost",
        cause: `no majority acknowledged this leader for ${now - this.majorityAckAt()} ms`,
      });
      return;
    }
    if (this.transferTarget && now > this.transferDeadline) this.transferTarget = null;
    for (const peer of this.progress.keys()) this.sendAppend(peer, true);
  }

  private sendAppend(peer: string, heartbeat: boolean): void {
    const p = this.progress.get(peer);
    if (!p) return;
    const now = this.now();
    if (p.inflight.some((b) => b.deadline <= now)) {
      // A batch went unanswered: assume it and its successors lost, and resend from the last match.
      p.inflight = [];
      p.next = p.match + 1;
    }
    const snap = this.log.snapshot();
    if (p.next <= snap.index) {
      // What this follower needs next was compacted away: it gets the state machine instead.
      if (p.snapshotUntil <= now) {
        // Re-offered if no reply comes; the runtime ignores an offer while a transfer to that peer runs.
        p.snapshotUntil = now + this.timing.appendTimeoutMs * 4;
        this.outbox.push({
          type: "send-snapshot",
          to: peer,
          term: this.term,
          index: snap.index,
          lastTerm: snap.term,
          sentAt: now,
        });
      } else if (heartbeat) {
        // Index 0 always matches: keeps the follower's election timer and our lease without touching its log.
        this.send(peer, { ...this.emptyAppend(now), prevLogIndex: 0, prevLogTerm: 0 });
      }
      return;
    }
    const last = this.log.lastIndex();
    const full = p.inflight.length >= MAX_INFLIGHT;
    if (!heartbeat && (full || p.next > last)) return;
    const entries = full || p.next > last ? [] : this.log.entries(p.next, last + 1, MAX_ENTRIES_PER_APPEND);
    // A heartbeat alongside batches in flight vouches only for what is known to match.
    const prevLogIndex = entries.length > 0 || p.inflight.length === 0 ? p.next - 1 : p.match;
    if (entries.length > 0) {
      const sentLast = (entries.at(-1) as Entry).index;
      p.inflight.push({ last: sentLast, deadline: now + this.timing.appendTimeoutMs });
      p.next = sentLast + 1;
    }
    this.send(peer, {
      type: "append",
      from: this.id,
      term: this.term,
      prevLogIndex,
      prevLogTerm: this.log.termAt(prevLogIndex) ?? 0,
      entries,
      leaderCommit: this.commitIndex,
      sentAt: now,
    });
  }

  private emptyAppend(now: number): Extract<RaftMessage, { type: "append" }> {
    return {
      type: "append",
      from: this.id,
      term: this.term,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [],
      leaderCommit: this.commitIndex,
      sentAt: now,
    };
  }

  private mostCaughtUpFollower(): string | null {
    let best: { peer: string; match: number } | null = null;
    for (const [peer, p] of this.progress) if (p.match > (best?.match ?? 0)) best = { peer, match: p.match };
    return best?.peer ?? null;
  }

  private maybeSendTimeoutNow(): void {
    const target = this.transferTarget;
    if (!target || this.progress.get(target)?.match !== this.log.lastIndex()) return;
    this.send(target, { type: "timeout-now", from: this.id, term: this.term });
  }

  // ---- commit and apply ---------------------------------------------------------------------

  private advanceCommit(): void {
    // The leader's own copy counts once durable: it sends new entries while its own write is under way.
    const matches = [this.log.durableIndex(), ...[...this.progress.values()].map((p) => p.match)].sort((a, b) => b - a);
    const candidate = matches[this.quorum() - 1] ?? 0;
    // Only entries of the leader's own term are committed by counting replicas (Raft §5.4.2).
    if (candidate > this.commitIndex && this.log.termAt(candidate) === this.term) {
      this.commitIndex = candidate;
      this.applyCommitted();
      for (const peer of this.progress.keys()) this.sendAppend(peer, false);
    }
  }

  /** Emits committed entries in order; the runtime applies each batch in one transaction before anything else runs. */
  private applyCommitted(): void {
    while (this.lastApplied < this.commitIndex) {
      const entries = this.log.entries(this.lastApplied + 1, this.commitIndex + 1, 1024);
      if (entries.length === 0) throw new Error(`raft: committed index ${this.lastApplied + 1} missing from the log`);
      this.outbox.push({ type: "apply", entries });
      this.lastApplied = (entries.at(-1) as Entry).index;
    }
  }

  // ---- helpers ------------------------------------------------------------------------------

  private noteConfig(index: number, command: Entry["command"]): void {
    if (command.name !== CONFIG_COMMAND) return;
    this.configLog.push({ index, voters: (command.payload as { voters: Voter[] }).voters });
    this.refreshConfig();
  }

  /** Reads the configuration entries from `from` to the end of the log (at start and after a snapshot). */
  private scanConfig(from: number): void {
    const last = this.log.lastIndex();
    for (let i = from; i <= last; i += 1024) {
      for (const e of this.log.entries(i, last + 1, 1024)) {
        if (e.command.name === CONFIG_COMMAND) {
          this.configLog.push({ index: e.index, voters: (e.command.payload as { voters: Voter[] }).voters });
        }
      }
    }
    this.refreshConfig();
  }

  private refreshConfig(): void {
    const voters = this.config;
    const ids = voters.map((v) => v.id);
    if (ids.join(",") === this.voterIds.join(",")) return;
    this.voterIds = ids;
    this.outbox.push({ type: "config", voters });
    // The actor does not exist yet during construction; it starts with the right voter flag then.
    if (this.actor) {
      this.actor.send({
        type: "voter-status",
        voter: ids.includes(this.id),
        cause: `voters are now ${ids.join(",")}`,
      });
    }
    if (this.role === "leader") this.syncProgress(this.log.lastIndex() + 1, this.now());
  }

  /** Leader: one progress record per voter other than itself. */
  private syncProgress(next: number, now: number): void {
    for (const peer of this.progress.keys()) if (!this.voterIds.includes(peer)) this.progress.delete(peer);
    for (const peer of this.voterIds) {
      if (peer !== this.id && !this.progress.has(peer)) {
        this.progress.set(peer, { next, match: 0, inflight: [], snapshotUntil: 0, ackedAt: now });
      }
    }
  }

  private adoptTerm(term: number, leader: string | null, cause: string): void {
    this.term = term;
    this.votedFor = null;
    this.persistHardState();
    this.setLeader(leader);
    this.actor.send({ type: "higher-term", cause });
  }

  private setLeader(leader: string | null): void {
    if (this.leaderId === leader) return;
    this.leaderId = leader;
    this.outbox.push({ type: "leader", leader, term: this.term });
  }

  private persistHardState(): void {
    this.log.setHardState({ term: this.term, votedFor: this.votedFor });
  }

  private heardLeaderRecently(): boolean {
    if (this.role === "leader") return true;
    return this.now() - this.leaderContactAt < this.electionMinMs;
  }

  private logUpToDate(index: number, term: number): boolean {
    const { lastLogIndex, lastLogTerm } = this.lastLog();
    return term > lastLogTerm || (term === lastLogTerm && index >= lastLogIndex);
  }

  private lastLog(): { lastLogIndex: number; lastLogTerm: number } {
    const lastLogIndex = this.log.lastIndex();
    return { lastLogIndex, lastLogTerm: this.log.termAt(lastLogIndex) ?? 0 };
  }

  /** The newest time that a majority, this leader included, has acknowledged. */
  private majorityAckAt(): number {
    const acks = [this.now(), ...[...this.progress.values()].map((p) => p.ackedAt)].sort((a, b) => b - a);
    return acks[this.quorum() - 1] ?? Number.NEGATIVE_INFINITY;
  }

  private broadcast(message: RaftMessage): void {
    for (const peer of this.voterIds) if (peer !== this.id) this.send(peer, message);
  }

  private send(to: string, message: RaftMessage): void {
    this.outbox.push({ type: "send", to, message });
  }

  private timerCause(eventType: string): string {
    if (eventType.includes("electionTimeout")) {
      return this.role === "follower"
        ? `no leader heard within the election timeout (leader was ${this.leaderId ?? "unknown"})`
        : `election round timed out in ${this.role}`;
    }
    return eventType;
  }
}

function roleOf(snapshot: { value: unknown }): Role {
  const v = snapshot.value;
  return (typeof v === "string" ? v : Object.keys(v as object)[0]) as Role;
}
