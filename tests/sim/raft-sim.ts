import { deriveTiming, type Timing } from "../../src/config/timing.ts";
import { kvSet } from "../../src/consensus/kv.ts";
import type { Entry, RaftMessage } from "../../src/consensus/messages.ts";
import type { RaftNode } from "../../src/consensus/raft.ts";
import {
  ConsensusRuntime,
  type RuntimeBugs,
  type RuntimeClock,
  SNAPSHOT_CHUNK_TIMEOUT_MS,
} from "../../src/consensus/runtime.ts";
import type { CommandDefinition } from "../../src/consensus/state-machine.ts";
import type { RaftTransport, SendOutcome } from "../../src/consensus/transport.ts";
import type { Db } from "../../src/db/client.ts";
import { createLogger } from "../../src/observability/log.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import type { TraceRecord } from "../../src/observability/trace.ts";
import { EventQueue } from "./event-queue.ts";
import { seededRandom } from "./rng.ts";
import { SimDisk } from "./sim-disk.ts";

/**
 * Voters in one process, each the real `ConsensusRuntime` over the real SQLite storage (an in-memory
 * database per voter), on a seeded network (delay, loss, duplication, reordering, symmetric and asymmetric
 * partitions) and a virtual clock that drifts per node within the configured bound; crashes and restarts
 * keep what the disk made durable, and the disk fails writes, tears one at a crash, or lies about its fsync
 * (`SimDisk`). `check()` runs the safety invariants after every event; every reply is checked against what
 * its sender made durable before it left.
 */
export interface RaftSimOptions {
  seed: number;
  voters: number;
  timing?: Timing;
  /** Commands the voters' state machines run besides `kv.set` (the work queue's, a run's). */
  commands?: readonly CommandDefinition<unknown>[];
  /** Planted ordering bugs in every runtime (see `RuntimeBugs`). */
  bugs?: RuntimeBugs;
}

export class SimVoter {
  runtime = null as unknown as ConsensusRuntime;
  disk = null as unknown as SimDisk;
  up = true;
  epoch = 0;
  /** The last index applied here (by entries or a snapshot), as the runtime reported it once durable. */
  applied = 0;
  generation = 0;

  constructor(
    readonly id: string,
    /** This node's clock runs at `rate` x real time. */
    readonly rate: number,
  ) {}

  get raft(): RaftNode {
    return this.runtime.raft;
  }

  /** Where its replicated tables are. */
  get db(): Db {
    return this.disk.db;
  }
}

/** Compact often, keeping a short tail, so lagging and restarted voters need snapshots. */
const COMPACTION = { after: 30, keep: 10 };
/** Small pieces, so a snapshot travels in several. */
const SNAPSHOT_CHUNK_CHARS = 2_048;

const refused = new Error("connection refused");
/** Each voter's runtime log: silent, or every line with its node when replaying a seed with SIM_LOG=1. */
const runtimeLog = (node: string) =>
  process.env.SIM_LOG ? createLogger("info", { node }) : createLogger("error", {}, () => true);

function durableMeta(voter: SimVoter, key: string): string | undefined {
  const row = voter.db.$client.query("SELECT value FROM node_meta WHERE key = ?").get(key) as { value: string } | null;
  return row?.value;
}

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
  /** Proposals whose promise resolved: the client was told they committed, so they must stay in the history. */
  readonly acknowledged = new Map<number, string>();
  private proposalSeq = 0;
  private readonly ids: string[];

  constructor(readonly opts: RaftSimOptions) {
    this.timing = opts.timing ?? deriveTiming("lan");
    this.random = seededRandom(opts.seed);
    this.ids = Array.from({ length: opts.voters }, (_, i) => `v${i + 1}`);
    for (const id of this.ids) {
      const drift = this.timing.clockDrift;
      const rate = 1 - drift + this.random() * 2 * drift;
      const voter = new SimVoter(id, rate);
      voter.disk = new SimDisk(this.random, () => {
        // The crash lands inside the write: nothing more leaves this node, and it restarts from its disk later.
        voter.up = false;
        this.at(this.now, () => this.crash(id));
      });
      voter.runtime = this.makeRuntime(voter);
      this.voters.push(voter);
    }
    for (const v of this.voters) v.runtime.start();
  }

  private makeRuntime(voter: SimVoter): ConsensusRuntime {
    const generation = voter.generation;
    const live = () => voter.up && voter.generation === generation;
    const clock: RuntimeClock = {
      now: () => this.localTime(voter),
      random: this.random,
      setTimeout: (fn, ms) => {
        const handle = { cancelled: false };
        this.at(this.now + ms / voter.rate, () => {
          if (!handle.cancelled && live()) fn();
        });
        return handle;
      },
      clearTimeout: (handle) => {
        (handle as { cancelled: boolean }).cancelled = true;
      },
      defer: (fn) =>
        this.at(this.now, () => {
          if (live()) fn();
        }),
    };
    const transport: RaftTransport = {
      send: (to, _address, messages, timeoutMs, done) =>
        this.exchange(voter, live, to, messages, timeoutMs, done, (target, reply) =>
          target.runtime.handle(messages, reply),
        ),
      sendSnapshotChunk: (to, _address, chunk, timeoutMs, done) =>
        this.exchange(voter, live, to, [], timeoutMs, done, (target, reply) => {
          let messages: RaftMessage[];
          try {
            messages = target.runtime.receiveSnapshotChunk(chunk);
          } catch (e) {
            reply({ ok: false, kind: "http", error: e as Error });
            return;
          }
          reply({ ok: true, messages });
        }),
    };
    return new ConsensusRuntime({
      nodeId: voter.id,
      voters: new Map(this.ids.map((id) => [id, id])),
      timing: this.timing,
      secret: "sim",
      db: voter.disk.db,
      traces: { record: (r) => this.traces.push({ ...r, node: voter.id }) },
      log: runtimeLog(voter.id),
      metrics: new Metrics(),
      commands: [kvSet, ...(this.opts.commands ?? [])],
      clock,
      transport,
      commit: voter.disk.commit,
      compaction: COMPACTION,
      snapshotChunkChars: SNAPSHOT_CHUNK_CHARS,
      bugs: this.opts.bugs,
      onApplied: (entry, result) => {
        if (live()) this.applied(voter, entry, result);
      },
      onInstalled: (index) => {
        if (live()) this.installed(voter, index);
      },
    });
  }

  localTime(voter: SimVoter): number {
    return voter.epoch + this.now * voter.rate;
  }

  private at(time: number, run: () => void): void {
    this.queue.push({ at: time, order: this.order++, run });
  }

  /**
   * One request over the network and its answer, each way subject to loss, partitions and delay; a request
   * may arrive twice. The sender hears the first answer, or a timeout.
   */
  private exchange(
    from: SimVoter,
    live: () => boolean,
    to: string,
    messages: readonly RaftMessage[],
    timeoutMs: number,
    done: (o: SendOutcome) => void,
    serve: (target: SimVoter, reply: (o: SendOutcome) => void) => void,
  ): void {
    let settled = false;
    const finish = (o: SendOutcome) => {
      if (settled) return;
      settled = true;
      if (live()) done(o);
    };
    this.checkVouched(from, messages);
    this.at(this.now + timeoutMs, () => finish({ ok: false, kind: "timeout", error: new Error("timed out") }));
    const copies = this.random() < this.duplicateRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.lost(from.id, to)) continue;
      this.at(this.now + this.delay(), () => {
        const target = this.voter(to);
        // A crashed process refuses the connection: the sender hears at once rather than at its deadline.
        if (!target.up) return this.answer(to, from.id, finish, { ok: false, kind: "unreachable", error: refused });
        serve(target, (answer) => {
          if (!target.up) return;
          if (answer.ok) this.checkVouched(target, answer.messages);
          this.answer(to, from.id, finish, answer);
        });
      });
    }
  }

  private answer(from: string, to: string, finish: (o: SendOutcome) => void, answer: SendOutcome): void {
    if (!this.lost(from, to)) this.at(this.now + this.delay(), () => finish(answer));
  }

  private lost(from: string, to: string): boolean {
    return this.random() < this.lossRate || this.blocked.has(`${from}>${to}`);
  }

  private delay(): number {
    return 0.2 + this.random() * this.maxDelayMs;
  }

  /**
   * A message may vouch only for what its sender made durable: a successful append reply for the log up to
   * its match index (with the terms the sender's log has there), a granted vote for the vote, a snapshot reply
   * for the log up to its index. Checked against the sender's database as it stands, not its memory.
   */
  private checkVouched(voter: SimVoter, messages: readonly RaftMessage[]): void {
    for (const m of messages) {
      if (m.type === "append-reply" && m.success) this.checkDurableLog(voter, m.matchIndex, m.type);
      else if (m.type === "snapshot-reply" && m.index > 0) this.checkDurableLog(voter, m.index, m.type);
      else if (m.type === "vote-reply" && m.granted) {
        const hard = JSON.parse(durableMeta(voter, "raft.hard_state") ?? '{"term":0,"votedFor":null}');
        if (hard.term < m.term || (hard.term === m.term && hard.votedFor === null))
          throw this.fail(`${voter.id} granted a vote in term ${m.term} before its vote was durable`);
      }
    }
  }

  private checkDurableLog(voter: SimVoter, index: number, what: string): void {
    const snap = JSON.parse(durableMeta(voter, "raft.snapshot") ?? '{"index":0,"term":0}') as { index: number };
    if (index <= snap.index) return;
    const row = voter.disk.db.$client.query("SELECT term FROM raft_log WHERE idx = ?").get(index) as {
      term: number;
    } | null;
    if (row?.term !== voter.raft.termAt(index))
      throw this.fail(`${voter.id} sent ${what} for index ${index} before that entry was durable`);
  }

  private applied(voter: SimVoter, e: Entry, result: unknown): void {
    if (e.index !== voter.applied + 1) throw this.fail(`${voter.id} applied index ${e.index} after ${voter.applied}`);
    voter.applied = e.index;
    const key = `${e.term}:${JSON.stringify(e.command)}`;
    const known = this.committed.get(e.index);
    if (known !== undefined && known !== key) {
      throw this.fail(`state machines disagree at index ${e.index}: ${known} vs ${key} on ${voter.id}`);
    }
    this.committed.set(e.index, key);
    if (!this.results.has(e.index)) this.results.set(e.index, result);
  }

  private installed(voter: SimVoter, index: number): void {
    // A snapshot carries the sender's applied state: every index it covers was applied somewhere first.
    for (let i = voter.applied + 1; i <= index; i++) {
      if (!this.committed.has(i))
        throw this.fail(`${voter.id} installed a snapshot at ${index} covering unapplied ${i}`);
    }
    voter.applied = index;
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

  /** Lets settled proposals' promises run their callbacks (the simulation itself never waits on them). */
  async settle(): Promise<void> {
    for (let i = 0; i < 4; i++) await Promise.resolve();
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
    return leaders.sort((a, b) => b.raft.currentTerm - a.runtime.raft.currentTerm)[0];
  }

  /** A client write to whoever leads now; the acknowledged ones are remembered for the invariants. */
  propose(): void {
    const command = { name: "kv.set", payload: { key: `k${this.proposalSeq % 7}`, value: this.proposalSeq++ } };
    const leader = this.leader();
    leader?.runtime.propose(command).then(
      (r) => this.acknowledged.set(r.index, `${r.term}:${JSON.stringify(command)}`),
      () => {},
    );
  }

  /**
   * A command to whoever leads with a lease, as a client would send it; returns where the entry must appear to
   * count (its index, and its term and content as `committed` will hold them), or null when no leader took it.
   */
  proposeCommand(name: string, payload: unknown): { index: number; key: string } | null {
    const leader = this.leader();
    if (!leader?.raft.holdsLease()) return null;
    const raft = leader.runtime.raft;
    const command = { name, payload };
    const before = raft.lastIndex;
    leader.runtime.propose(command).catch(() => {});
    if (raft.lastIndex === before) return null;
    return { index: raft.lastIndex, key: `${raft.currentTerm}:${JSON.stringify(command)}` };
  }

  /**
   * Runs until every voter has applied every committed entry (a snapshot for one behind the compacted log,
   * after a transfer whose piece was lost has timed out).
   */
  awaitCatchUp(withinMs = SNAPSHOT_CHUNK_TIMEOUT_MS + 10_000): void {
    const by = this.now + withinMs;
    while (this.voters.some((v) => v.applied !== this.committed.size)) {
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
        ? { add: { id: pick(outside), address: pick(outside) } }
        : removable.length >= 2
          ? { remove: pick(removable) }
          : null;
    if (change) leader.runtime.changeVoters(change).catch(() => {});
  }

  /** The voters as the newest leader sees them. */
  members(): string[] {
    return this.leader()?.runtime.raft.config.map((v) => v.id) ?? this.voters.map((v) => v.id);
  }

  crash(id: string): void {
    const v = this.voter(id);
    v.up = false;
    v.generation++;
    v.raft.stop();
    v.disk.crash();
  }

  restart(id: string): void {
    const v = this.voter(id);
    v.generation++;
    v.up = true;
    v.runtime = this.makeRuntime(v);
    v.applied = v.runtime.applied;
    v.runtime.start();
  }

  /** The next write on `id` is cut short by a crash: the node is down from that moment. */
  crashDuringNextWrite(id: string): void {
    this.voter(id).disk.tearNextWrite = true;
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

  /** Every voter's replicated `kv` rows, for comparing state machines once they caught up. */
  kvRows(v: SimVoter): string {
    return JSON.stringify(v.disk.db.$client.query("SELECT key, value, idx, term FROM kv ORDER BY key").all());
  }
}
