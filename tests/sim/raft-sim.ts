import { deriveTiming, type Timing } from "../../src/config/timing.ts";
import type { Entry, RaftMessage } from "../../src/consensus/messages.ts";
import { type Clock, NotLeaderError, RaftNode } from "../../src/consensus/raft.ts";
import type { StateMachine } from "../../src/consensus/state-machine.ts";
import { MemoryStorage } from "../../src/consensus/storage.ts";
import type { Db } from "../../src/db/client.ts";
import type { TraceRecord } from "../../src/observability/trace.ts";
import { EventQueue } from "./event-queue.ts";
import { seededRandom } from "./rng.ts";

/**
 * Raft voters in one process over a seeded network: delay, loss, duplication, reordering, symmetric and
 * asymmetric partitions; crashes and restarts with durable state; every node's clock drifting within the
 * configured bound. `check()` runs the safety invariants and is called after every event.
 */
export interface RaftSimOptions {
  seed: number;
  voters: number;
  timing?: Timing;
  /** A real state machine per voter (the work queue's), applied beside the entry list. */
  stateMachine?: () => { state: StateMachine; db: Db };
}

interface SimVoter {
  id: string;
  raft: RaftNode;
  storage: MemoryStorage;
  up: boolean;
  /** This node's clock runs at `rate` x real time. */
  rate: number;
  epoch: number;
  applied: Entry[];
  generation: number;
  /** The data of the snapshot being handed to the core right now. */
  incomingSnapshot: { entries: Entry[]; state: string | null } | null;
  machine: { state: StateMachine; db: Db } | null;
}

/** Compact often, keeping a short tail, so lagging and restarted voters need snapshots. */
const COMPACT_AFTER = 30;
const COMPACT_KEEP = 10;

export class RaftSim {
  now = 0;
  readonly timing: Timing;
  readonly random: () => number;
  readonly voters: SimVoter[] = [];
  readonly traces: Array<TraceRecord & { node: string }> = [];
  private readonly queue = new EventQueue();
  private order = 0;
  /** Directed links that drop everything: "a>b". */
  readonly blocked = new Set<string>();
  lossRate = 0;
  duplicateRate = 0;
  maxDelayMs = 10;
  /** Everything any node applied, by index: the one committed history. */
  readonly committed = new Map<number, string>();
  /** What each applied command returned (the same on every voter: apply is deterministic). */
  readonly results = new Map<number, unknown>();
  private readonly leadersByTerm = new Map<number, string>();
  /** Proposals by the index their leader gave them; one applied there is acknowledged to its client. */
  private readonly proposed = new Map<number, string>();
  /** Proposals acknowledged to a client: they must stay in the committed history. */
  readonly acknowledged = new Map<number, string>();
  private proposalSeq = 0;

  constructor(readonly opts: RaftSimOptions) {
    this.timing = opts.timing ?? deriveTiming("lan");
    this.random = seededRandom(opts.seed);
    const ids = Array.from({ length: opts.voters }, (_, i) => `v${i + 1}`);
    for (const id of ids) {
      const drift = this.timing.clockDrift;
      const rate = 1 - drift + this.random() * 2 * drift;
      const storage = new MemoryStorage();
      const voter: SimVoter = {
        id,
        storage,
        up: true,
        rate,
        epoch: 0,
        applied: [],
        generation: 0,
        incomingSnapshot: null,
        machine: opts.stateMachine?.() ?? null,
        raft: null as never,
      };
      voter.raft = this.makeRaft(voter, ids);
      this.voters.push(voter);
    }
    for (const v of this.voters) v.raft.start();
    this.drainAll();
  }

  private makeRaft(voter: SimVoter, ids: readonly string[]): RaftNode {
    const generation = voter.generation;
    const clock: Clock = {
      setTimeout: (fn: (...args: unknown[]) => void, ms: number) => {
        const handle = { cancelled: false };
        this.at(this.now + ms / voter.rate, () => {
          if (handle.cancelled || !voter.up || voter.generation !== generation) return;
          fn();
          this.drain(voter);
        });
        return handle;
      },
      clearTimeout: (handle: unknown) => {
        (handle as { cancelled: boolean }).cancelled = true;
      },
    };
    return new RaftNode({
      id: voter.id,
      voters: ids.map((id) => ({ id, address: id })),
      storage: voter.storage,
      timing: this.timing,
      appliedIndex: voter.applied.length,
      now: () => this.localTime(voter),
      random: this.random,
      clock,
    });
  }

  localTime(voter: SimVoter): number {
    return voter.epoch + this.now * voter.rate;
  }

  private at(time: number, run: () => void): void {
    this.queue.push({ at: time, order: this.order++, run });
  }

  private drainAll(): void {
    for (const v of this.voters) this.drain(v);
  }

  private drain(voter: SimVoter): void {
    if (!voter.up) return;
    voter.raft.flush();
    for (const effect of voter.raft.takeEffects()) {
      switch (effect.type) {
        case "send":
          this.deliver(voter.id, effect.to, effect.message);
          break;
        case "apply":
          for (const e of effect.entries) this.apply(voter, e);
          voter.machine?.state.applyIn(voter.machine.db, effect.entries, (index, result) => {
            if (!this.results.has(index)) this.results.set(index, result);
          });
          break;
        case "send-snapshot": {
          // As the runtime does: the state as it is now, labelled with the index it reflects.
          const index = voter.applied.length;
          const message = {
            type: "snapshot" as const,
            from: voter.id,
            term: effect.term,
            index,
            lastTerm: voter.raft.termAt(index) ?? 0,
            voters: voter.raft.configAt(index),
            sentAt: effect.sentAt,
          };
          const data = { entries: voter.applied.slice(0, index), state: voter.machine?.state.snapshot() ?? null };
          this.deliver(voter.id, effect.to, message, data);
          break;
        }
        case "install-snapshot":
          this.install(voter, effect.index);
          break;
        case "trace":
          this.traces.push({ ...effect.record, node: voter.id });
          break;
        case "leader":
        case "config":
          break;
      }
    }
    if (voter.applied.length - voter.raft.snapshotIndex > COMPACT_AFTER)
      voter.raft.compact(voter.applied.length - COMPACT_KEEP);
  }

  private install(voter: SimVoter, index: number): void {
    const snapshot = voter.incomingSnapshot;
    const data = snapshot?.entries;
    if (!data || data.length !== index) throw this.fail(`${voter.id} installs a snapshot at ${index} without its data`);
    if (voter.machine && snapshot.state !== null) {
      const { state, db } = voter.machine;
      db.transaction((tx) => state.restoreIn(tx as unknown as Db, snapshot.state as string, index));
    }
    for (const e of data) {
      const known = this.committed.get(e.index);
      if (known !== `${e.term}:${JSON.stringify(e.command)}`) {
        throw this.fail(`snapshot for ${voter.id} disagrees with the committed history at ${e.index}`);
      }
    }
    voter.applied = [...data];
  }

  private apply(voter: SimVoter, e: Entry): void {
    if (e.index !== voter.applied.length + 1) {
      throw this.fail(`${voter.id} applied index ${e.index} after ${voter.applied.length}`);
    }
    voter.applied.push(e);
    const key = `${e.term}:${JSON.stringify(e.command)}`;
    const known = this.committed.get(e.index);
    if (known !== undefined && known !== key) {
      throw this.fail(`state machines disagree at index ${e.index}: ${known} vs ${key} on ${voter.id}`);
    }
    this.committed.set(e.index, key);
    if (this.proposed.get(e.index) === key) this.acknowledged.set(e.index, key);
  }

  private deliver(
    from: string,
    to: string,
    message: RaftMessage,
    snapshot?: { entries: Entry[]; state: string | null },
  ): void {
    const copies = this.random() < this.duplicateRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.random() < this.lossRate || this.blocked.has(`${from}>${to}`)) continue;
      const delay = 0.2 + this.random() * this.maxDelayMs;
      this.at(this.now + delay, () => {
        const target = this.voter(to);
        if (!target.up) return;
        target.incomingSnapshot = snapshot ?? null;
        const replies = target.raft.receive(message);
        this.drain(target);
        target.incomingSnapshot = null;
        for (const r of replies) this.deliver(to, from, r);
      });
    }
  }

  voter(id: string): SimVoter {
    const v = this.voters.find((x) => x.id === id);
    if (!v) throw new Error(`no voter ${id}`);
    return v;
  }

  /** Runs events until `until`, checking the invariants after each. */
  runUntil(until: number): void {
    for (let next = this.queue.peek(); next && next.at <= until; next = this.queue.peek()) {
      this.queue.pop();
      this.now = Math.max(this.now, next.at);
      next.run();
      this.check();
    }
    this.now = until;
  }

  run(ms: number): void {
    this.runUntil(this.now + ms);
  }

  fail(message: string): Error {
    return new Error(`seed ${this.opts.seed} at ${this.now.toFixed(1)} ms: ${message}`);
  }

  /** Safety: one leader per term; no two valid leases at once; acknowledged writes are in the history. */
  check(): void {
    let holders = 0;
    for (const v of this.voters) {
      if (!v.up || v.raft.currentRole !== "leader") continue;
      const term = v.raft.currentTerm;
      const other = this.leadersByTerm.get(term);
      if (other && other !== v.id) throw this.fail(`two leaders in term ${term}: ${other} and ${v.id}`);
      this.leadersByTerm.set(term, v.id);
      if (v.raft.holdsLease()) holders++;
    }
    if (holders > 1) throw this.fail(`${holders} leaders hold a lease at once`);
    for (const [index, key] of this.acknowledged) {
      const c = this.committed.get(index);
      if (c !== undefined && c !== key) throw this.fail(`acknowledged entry ${index} was replaced`);
    }
  }

  leader(): SimVoter | undefined {
    const leaders = this.voters.filter((v) => v.up && v.raft.currentRole === "leader");
    return leaders.sort((a, b) => b.raft.currentTerm - a.raft.currentTerm)[0];
  }

  /** A client write to whoever leads now; an acknowledged one is remembered for the invariants. */
  propose(): void {
    const leader = this.leader();
    if (!leader) return;
    const command = { name: "kv.set", payload: { key: `k${this.proposalSeq % 7}`, value: this.proposalSeq++ } };
    const term = leader.raft.currentTerm;
    const before = leader.raft.lastIndex;
    // The simulation runs synchronously, so it watches the apply stream rather than the promise.
    leader.raft.propose(command).catch((e) => {
      if (!(e instanceof NotLeaderError)) throw e;
    });
    if (leader.raft.lastIndex > before) this.proposed.set(leader.raft.lastIndex, `${term}:${JSON.stringify(command)}`);
    this.drain(leader);
  }

  /**
   * A command to whoever leads with a lease, as a client would send it; returns where the entry must appear to
   * count (its index, and its term and content as `committed` will hold them), or null when no leader took it.
   */
  proposeCommand(name: string, payload: unknown): { index: number; key: string } | null {
    const leader = this.leader();
    if (!leader?.raft.holdsLease()) return null;
    const command = { name, payload };
    const before = leader.raft.lastIndex;
    leader.raft.propose(command).catch(() => {});
    if (leader.raft.lastIndex === before) return null;
    return { index: leader.raft.lastIndex, key: `${leader.raft.currentTerm}:${JSON.stringify(command)}` };
  }

  /** Runs until every voter has applied every committed entry (a snapshot for one behind the compacted log). */
  awaitCatchUp(withinMs = 10_000): void {
    const by = this.now + withinMs;
    while (this.voters.some((v) => v.applied.length !== this.committed.size)) {
      if (this.now > by) throw this.fail("a voter did not catch up after the faults stopped");
      this.run(100);
    }
  }

  /** Asks the leader to add a node outside the configuration, or remove a member other than itself. */
  changeVoters(): void {
    const leader = this.leader();
    if (!leader) return;
    const members = leader.raft.config.map((v) => v.id);
    const outside = this.voters.filter((v) => !members.includes(v.id)).map((v) => v.id);
    const removable = members.filter((id) => id !== leader.id);
    const pick = (ids: string[]) => ids[Math.floor(this.random() * ids.length)] as string;
    const change =
      outside.length > 0 && (this.random() < 0.5 || removable.length < 2)
        ? { add: { id: pick(outside), address: "sim" } }
        : removable.length >= 2
          ? { remove: pick(removable) }
          : null;
    if (!change) return;
    leader.raft.changeVoters(change).catch(() => {});
    this.drain(leader);
  }

  /** The voters as the newest leader sees them. */
  members(): string[] {
    return this.leader()?.raft.config.map((v) => v.id) ?? this.voters.map((v) => v.id);
  }

  crash(id: string): void {
    const v = this.voter(id);
    v.up = false;
    v.raft.stop();
  }

  restart(id: string): void {
    const v = this.voter(id);
    v.generation++;
    v.up = true;
    v.raft = this.makeRaft(
      v,
      this.voters.map((x) => x.id),
    );
    v.raft.start();
    this.drain(v);
  }

  partition(a: string[], b: string[], oneWay = false): void {
    for (const x of a) {
      for (const y of b) {
        this.blocked.add(`${x}>${y}`);
        if (!oneWay) this.blocked.add(`${y}>${x}`);
      }
    }
  }

  heal(): void {
    this.blocked.clear();
    this.lossRate = 0;
    this.duplicateRate = 0;
  }
}
