import { initialTransition, type SnapshotFrom, transition } from "xstate";
import type { Timing } from "../config/timing.ts";
import { type PeerHealthEvent, type PeerState, peerHealthMachine } from "../machines/peer-health.ts";
import { MAX_COUNTER } from "../net/bounds.ts";
import type { TraceRecord } from "../observability/trace.ts";
import type { NodeInfo } from "../shared/node-info.ts";
import { MAX_UPDATES_PER_MESSAGE, type MemberDigest, type SwimMessage, type Update } from "./messages.ts";
import { Suspicion, suspicionBounds } from "./suspicion.ts";

/**
 * SWIM membership with Lifeguard-style local health, as a deterministic core:
 * every input carries `now`, randomness comes from an injected generator, and every
 * output is an effect the runtime (or the simulator) carries out. No I/O happens here.
 */

export interface Endpoint {
  id?: string;
  address: string;
}

export interface Member {
  id: string;
  address: string;
  state: PeerState;
  incarnation: number;
  stateSince: number;
  lastSeenAt: number;
  infoVersion: number;
  info: NodeInfo | null;
  /** Smoothed round trip of direct probes, or null before the first. */
  rttMs: number | null;
}

export type Effect =
  | { type: "send"; to: Endpoint; message: SwimMessage }
  | { type: "trace"; record: TraceRecord }
  | { type: "member-changed"; member: Member }
  | { type: "member-purged"; id: string }
  | { type: "incarnation"; incarnation: number; cause: string }
  /** Two addresses for one node id: a restart at a new address, or two nodes started with the same id. */
  | { type: "identity-conflict"; id: string; known: string; claimed: string; self: boolean };

export interface MembershipOptions {
  self: { id: string; address: string };
  cluster: string;
  incarnation: number;
  timing: Timing;
  seeds: readonly string[];
  now: number;
  /** Uniform in [0, 1); seeded in the simulator. */
  random: () => number;
}

type HealthSnapshot = SnapshotFrom<typeof peerHealthMachine>;

interface MemberRecord extends Member {
  health: HealthSnapshot;
  /** Set while the member is suspect. */
  suspicion: Suspicion | null;
}

interface Probe {
  seq: number;
  targetId: string;
  sentAt: number;
  indirectSent: boolean;
}

interface Relay {
  requester: Endpoint;
  requesterSeq: number;
  expiresAt: number;
}

interface Broadcast {
  update: Update;
  transmits: number;
}

const MAX_PIGGYBACK = 16;
/** Early syncs for strangers are this many protocol periods apart at most (a push-pull is a whole member table). */
const STRANGER_SYNC_PERIODS = 4;
/** A bound on the member table, so no stream of updates can grow it without limit. */
export const MAX_MEMBERS = 4096;

export class Membership {
  readonly self: { id: string; address: string };
  readonly cluster: string;
  private incarnation: number;
  private readonly timing: Timing;
  private readonly random: () => number;
  private readonly seeds: readonly string[];
  private readonly members = new Map<string, MemberRecord>();
  private readonly broadcasts = new Map<string, Broadcast>();
  private readonly relays = new Map<number, Relay>();
  private outbox: Effect[] = [];
  private selfInfo: NodeInfo | null = null;
  /** Starts at the clock, so a restarted node's info outranks what peers remember of its previous life. */
  private selfInfoVersion: number;
  private probe: Probe | null = null;
  private probeOrder: string[] = [];
  private nextSeq = 1;
  private nextProbeAt: number;
  private nextGossipAt: number;
  private nextPushPullAt: number;
  private nextReconnectAt: number;
  private nextJoinAt: number;
  private joinBackoffMs: number;
  private lastTickAt: number;
  private lastStallAt = Number.NEGATIVE_INFINITY;
  /** When a message from a member we do not know may next start an early anti-entropy sync. */
  private nextStrangerSyncAt = Number.NEGATIVE_INFINITY;
  private leaving = false;
  /** Set once some peer has answered our sync with its full view; until then we keep asking the seeds. */
  private joined = false;

  constructor(opts: MembershipOptions) {
    this.self = opts.self;
    this.cluster = opts.cluster;
    this.incarnation = opts.incarnation;
    this.timing = opts.timing;
    this.random = opts.random;
    this.seeds = opts.seeds.filter((s) => s !== opts.self.address);
    const t = opts.timing;
    this.lastTickAt = opts.now;
    this.selfInfoVersion = opts.now;
    this.nextProbeAt = opts.now + this.jitter(t.probeIntervalMs);
    this.nextGossipAt = opts.now + t.gossipIntervalMs;
    this.nextPushPullAt = opts.now + this.jitter(t.pushPullIntervalMs);
    this.nextReconnectAt = opts.now + t.reconnectIntervalMs;
    this.nextJoinAt = opts.now;
    this.joinBackoffMs = t.joinRetryMinMs;
    this.enqueue({ kind: "alive", id: this.self.id, address: this.self.address, incarnation: this.incarnation });
  }

  // ---- inputs -------------------------------------------------------------------------------

  /** Loads peers remembered from an earlier run; they are re-probed, not trusted. */
  restore(remembered: readonly Member[], now: number): void {
    for (const m of remembered) {
      if (m.id === this.self.id || this.members.has(m.id)) continue;
      const state = m.state === "left" || m.state === "dead" ? m.state : "alive";
      this.addMember(m.id, m.address, state, m.incarnation, now, "restored from disk", false);
      const rec = this.members.get(m.id);
      if (rec) {
        rec.info = m.info;
        rec.infoVersion = m.infoVersion;
        rec.lastSeenAt = m.lastSeenAt;
        if (state !== "alive") rec.stateSince = m.stateSince;
      }
    }
  }

  setInfo(info: NodeInfo): void {
    this.selfInfo = info;
    this.selfInfoVersion += 1;
    this.enqueue({ kind: "info", id: this.self.id, version: this.selfInfoVersion, info });
  }

  /** Handles one message from a peer and returns the replies that go back to it. */
  receive(message: SwimMessage, now: number): SwimMessage[] {
    const sender = this.members.get(message.from);
    if (sender) sender.lastSeenAt = now;
    if (message.type === "sync") return this.receiveSync(message, now);
    for (const update of message.updates) this.apply(update, now, `gossip from ${message.from}`);
    if (!this.members.has(message.from) && message.from !== this.self.id) this.heardFromStranger(now);
    switch (message.type) {
      case "ping":
        return [{ type: "ack", from: this.self.id, seq: message.seq, updates: this.piggyback() }];
      case "ack":
        this.receiveAck(message.seq, message.from, now);
        return [];
      case "ping-req": {
        const seq = this.nextSeq++;
        const requester = sender ? { id: sender.id, address: sender.address } : null;
        if (!requester) return [];
        this.relays.set(seq, { requester, requesterSeq: message.seq, expiresAt: now + this.timing.probeIntervalMs });
        this.send(message.target, { type: "ping", from: this.self.id, seq, updates: this.piggyback() });
        return [];
      }
      case "gossip":
        return [];
    }
  }

  tick(now: number): void {
    const t = this.timing;
    const gap = now - this.lastTickAt;
    this.lastTickAt = now;
    if (gap > t.tickMs + t.localStallMs) this.onLocalStall(now, gap);
    this.advanceProbe(now);
    this.expireSuspicions(now);
    this.expireRelays(now);
    if (now >= this.nextGossipAt) {
      this.nextGossipAt = now + t.gossipIntervalMs;
      this.gossipRound();
    }
    if (now >= this.nextPushPullAt) {
      this.nextPushPullAt = now + this.jitter(t.pushPullIntervalMs);
      const peer = this.pick(this.membersIn("alive"), 1)[0];
      if (peer) this.sendSync(peer, false);
    }
    if (now >= this.nextReconnectAt) {
      this.nextReconnectAt = now + this.jitter(t.reconnectIntervalMs);
      const dead = this.membersIn("dead").filter((m) => now - m.stateSince < t.retireAfterMs);
      const peer = this.pick(dead, 1)[0];
      if (peer) this.sendSync(peer, false);
    }
    const isolated = this.membersIn("alive", "suspect").length === 0;
    if ((isolated || !this.joined) && now >= this.nextJoinAt) this.tryJoin(now);
    this.purge(now);
  }

  /** Announces a graceful leave to every reachable member; the caller sends these, then exits. */
  leave(): void {
    this.leaving = true;
    const update: Update = { kind: "left", id: this.self.id, incarnation: this.incarnation };
    for (const m of this.membersIn("alive", "suspect")) {
      this.send(m, { type: "gossip", from: this.self.id, updates: [update] });
    }
  }

  takeEffects(): Effect[] {
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  // ---- views --------------------------------------------------------------------------------

  get currentIncarnation(): number {
    return this.incarnation;
  }

  list(): Member[] {
    return [...this.members.values()].map(toMember);
  }

  get(id: string): Member | undefined {
    const m = this.members.get(id);
    return m ? toMember(m) : undefined;
  }

  // ---- probing ------------------------------------------------------------------------------

  private advanceProbe(now: number): void {
    const t = this.timing;
    const probe = this.probe;
    if (probe) {
      const target = this.members.get(probe.targetId);
      const waited = now - probe.sentAt;
      if (!target || target.state === "dead" || target.state === "left") {
        this.probe = null;
      } else if (waited >= t.indirectProbeTimeoutMs) {
        this.probe = null;
        // A stall of our own during the wait means the silence is not evidence against the target.
        if (this.lastStallAt < probe.sentAt) {
          this.suspect(target, now, `no ack to ping ${probe.seq} nor to ${t.indirectProbes} indirect probes`);
        }
      } else if (!probe.indirectSent && waited >= t.probeTimeoutMs) {
        probe.indirectSent = true;
        const helpers = this.pick(
          this.membersIn("alive").filter((m) => m.id !== target.id),
          t.indirectProbes,
        );
        for (const h of helpers) {
          this.send(h, {
            type: "ping-req",
            from: this.self.id,
            seq: probe.seq,
            target: { id: target.id, address: target.address },
            updates: this.piggyback(),
          });
        }
      }
    }
    if (!this.probe && now >= this.nextProbeAt) {
      this.nextProbeAt = now + t.probeIntervalMs;
      const target = this.nextProbeTarget();
      if (target) {
        const seq = this.nextSeq++;
        this.probe = { seq, targetId: target.id, sentAt: now, indirectSent: false };
        this.send(target, { type: "ping", from: this.self.id, seq, updates: this.piggyback() });
      }
    }
  }

  /** Randomized round robin: every member is probed once per round, in a fresh random order. */
  private nextProbeTarget(): MemberRecord | undefined {
    for (let attempts = 0; attempts < 2; attempts++) {
      while (this.probeOrder.length > 0) {
        const id = this.probeOrder.pop() as string;
        const m = this.members.get(id);
        if (m && (m.state === "alive" || m.state === "suspect")) return m;
      }
      this.probeOrder = this.shuffle(this.membersIn("alive", "suspect").map((m) => m.id));
    }
    return undefined;
  }

  private receiveAck(seq: number, from: string, now: number): void {
    if (this.probe?.seq === seq) {
      const target = this.members.get(this.probe.targetId);
      if (target) {
        target.lastSeenAt = now;
        // Only a direct ack times the path to the target; an indirect one went through a helper.
        if (from === target.id) {
          const sample = now - this.probe.sentAt;
          target.rttMs = target.rttMs === null ? sample : Math.round(target.rttMs * 0.8 + sample * 0.2);
        }
      }
      this.probe = null;
      return;
    }
    const relay = this.relays.get(seq);
    if (relay) {
      this.relays.delete(seq);
      this.send(relay.requester, {
        type: "ack",
        from: this.self.id,
        seq: relay.requesterSeq,
        updates: this.piggyback(),
      });
    }
  }

  private expireRelays(now: number): void {
    for (const [seq, relay] of this.relays) if (now >= relay.expiresAt) this.relays.delete(seq);
  }

  private onLocalStall(now: number, gap: number): void {
    this.lastStallAt = now;
    // Our clock jumped: give every suspect the time it lost while we were not listening.
    for (const m of this.members.values()) m.suspicion?.extend(gap);
  }

  // ---- suspicion ----------------------------------------------------------------------------

  private suspect(target: MemberRecord, now: number, cause: string): void {
    this.apply({ kind: "suspect", id: target.id, incarnation: target.incarnation, by: this.self.id }, now, cause);
  }

  private startSuspicion(now: number, suspector: string): Suspicion {
    const clusterSize = this.membersIn("alive", "suspect").length + 1;
    return new Suspicion(now, suspector, suspicionBounds(clusterSize, this.timing));
  }

  private expireSuspicions(now: number): void {
    for (const m of this.members.values()) {
      const s = m.suspicion;
      if (m.state !== "suspect" || !s || now < s.deadline) continue;
      const confirmed = `${s.confirmations} of ${s.bounds.expected} confirmations`;
      const cause = `suspect for ${now - s.startedAt} ms without refutation (${confirmed}, timeout ${s.timeoutMs} ms)`;
      if (this.transitionMember(m, { type: "suspicion-expired" }, now, cause)) {
        const dead: Update = { kind: "dead", id: m.id, incarnation: m.incarnation, by: this.self.id };
        this.enqueue(dead);
        // Like a refutation, a verdict is rare: tell every live member now instead of waiting for gossip rounds.
        for (const peer of this.membersIn("alive", "suspect")) {
          this.send(peer, { type: "gossip", from: this.self.id, updates: [dead] });
        }
      }
    }
  }

  // ---- applying news ------------------------------------------------------------------------

  private apply(update: Update, now: number, cause: string): void {
    if (update.id === this.self.id) {
      this.applyAboutSelf(update);
      return;
    }
    const member = this.members.get(update.id);
    if (update.kind === "info") {
      if (member && update.version > member.infoVersion) {
        member.info = update.info;
        member.infoVersion = update.version;
        this.outbox.push({ type: "member-changed", member: toMember(member) });
        this.enqueue(update);
      }
      return;
    }
    if (!member) {
      if (update.kind !== "alive") return; // news about a node we cannot reach; its alive will come
      if (this.members.size >= MAX_MEMBERS) return;
      this.addMember(update.id, update.address, "alive", update.incarnation, now, cause, true);
      return;
    }
    const event: PeerHealthEvent = { type: update.kind, incarnation: update.incarnation };
    const before = member.incarnation;
    const suspector = update.kind === "suspect" ? update.by : undefined;
    const changed = this.transitionMember(
      member,
      event,
      now,
      `${update.kind}@${update.incarnation}: ${cause}`,
      suspector,
    );
    const confirmed = update.kind === "suspect" && this.confirmSuspicion(member, update, now);
    if (!changed && !confirmed) return;
    if (update.kind === "alive" && update.incarnation > before && update.address !== member.address) {
      this.outbox.push({
        type: "identity-conflict",
        id: member.id,
        known: member.address,
        claimed: update.address,
        self: false,
      });
      member.address = update.address;
    }
    // A new confirmation is gossiped again, so every member's timeout shrinks with it (as memberlist does).
    this.enqueue(update);
  }

  /** Counts a suspect message about the suspicion we hold as a confirmation if its sender was not counted yet. */
  private confirmSuspicion(member: MemberRecord, update: Extract<Update, { kind: "suspect" }>, now: number): boolean {
    const s = member.suspicion;
    if (member.state !== "suspect" || !s || update.incarnation !== member.incarnation) return false;
    if (!s.confirm(update.by)) return false;
    const cause = `confirmed by ${update.by} (${s.confirmations} of ${s.bounds.expected}): timeout ${s.timeoutMs} ms`;
    this.trace(member.id, "suspect", "suspect", "suspect-confirmed", cause, now);
    return true;
  }

  private applyAboutSelf(update: Update): void {
    if (update.kind === "info") return;
    if (update.kind === "alive" && update.address !== this.self.address && update.incarnation >= this.incarnation) {
      const { id, address } = this.self;
      this.outbox.push({ type: "identity-conflict", id, known: address, claimed: update.address, self: true });
    }
    if (update.kind === "alive" && update.incarnation <= this.incarnation) return;
    if (update.kind !== "alive" && update.incarnation < this.incarnation) return;
    if (this.leaving && update.kind === "left") return;
    // Refute: anything that says we are not alive, or an alive newer than ours (a previous life), is outdated.
    // Capped so our own updates stay within what the wire accepts (only a forged update can reach the cap).
    this.incarnation = Math.min(update.incarnation + 1, MAX_COUNTER);
    this.outbox.push({
      type: "incarnation",
      incarnation: this.incarnation,
      cause: `${update.kind}@${update.incarnation}`,
    });
    const alive: Update = {
      kind: "alive",
      id: this.self.id,
      address: this.self.address,
      incarnation: this.incarnation,
    };
    this.enqueue(alive);
    // Refutations are rare and urgent: tell every live member now rather than trusting piggyback alone,
    // whose few retransmits can all be spent on replies to callers that already gave up (after a stall).
    for (const m of this.membersIn("alive", "suspect"))
      this.send(m, { type: "gossip", from: this.self.id, updates: [alive] });
  }

  /**
   * Runs the peer's machine; returns whether the event was accepted (state or incarnation changed).
   * A suspicion that starts here is counted from `suspector` (ourselves unless the news came from another).
   */
  private transitionMember(
    member: MemberRecord,
    event: PeerHealthEvent,
    now: number,
    cause: string,
    suspector = this.self.id,
  ): boolean {
    const [next] = transition(peerHealthMachine, member.health, event);
    const from = member.state;
    const to = next.value as PeerState;
    if (to === from && next.context.incarnation === member.incarnation) return false;
    member.health = next;
    member.incarnation = next.context.incarnation;
    if (to !== from) {
      member.state = to;
      member.stateSince = now;
      member.suspicion = to === "suspect" ? this.startSuspicion(now, suspector) : null;
      this.trace(member.id, from, to, event.type, cause, now);
    }
    this.outbox.push({ type: "member-changed", member: toMember(member) });
    return true;
  }

  private addMember(
    id: string,
    address: string,
    state: PeerState,
    incarnation: number,
    now: number,
    cause: string,
    announce: boolean,
    suspector = this.self.id,
  ): void {
    let [health] = initialTransition(peerHealthMachine, { incarnation });
    if (state !== "alive") [health] = transition(peerHealthMachine, health, { type: state, incarnation });
    const record: MemberRecord = {
      id,
      address,
      state,
      incarnation,
      stateSince: now,
      lastSeenAt: now,
      infoVersion: 0,
      info: null,
      rttMs: null,
      health,
      suspicion: state === "suspect" ? this.startSuspicion(now, suspector) : null,
    };
    this.members.set(id, record);
    this.trace(id, null, state, "discovered", cause, now);
    this.outbox.push({ type: "member-changed", member: toMember(record) });
    if (announce) this.enqueue({ kind: "alive", id, address, incarnation });
  }

  // ---- anti-entropy and joining -------------------------------------------------------------

  private receiveSync(message: Extract<SwimMessage, { type: "sync" }>, now: number): SwimMessage[] {
    if (message.cluster !== this.cluster) return [];
    for (const d of message.members) this.mergeDigest(d, message.from, now);
    if (message.reply) this.joined = true;
    return message.reply ? [] : [this.syncMessage(true)];
  }

  private mergeDigest(d: MemberDigest, from: string, now: number): void {
    const cause = `sync from ${from}`;
    if (d.id === this.self.id) {
      if (d.state !== "alive") this.applyAboutSelf({ kind: d.state, id: d.id, incarnation: d.incarnation, by: from });
      else this.applyAboutSelf({ kind: "alive", id: d.id, address: d.address, incarnation: d.incarnation });
      return;
    }
    if (!this.members.has(d.id)) {
      if (this.members.size >= MAX_MEMBERS) return;
      this.addMember(d.id, d.address, d.state, d.incarnation, now, cause, d.state === "alive", from);
    } else if (d.state === "alive") {
      this.apply({ kind: "alive", id: d.id, address: d.address, incarnation: d.incarnation }, now, cause);
    } else if (d.state === "left") {
      this.apply({ kind: "left", id: d.id, incarnation: d.incarnation }, now, cause);
    } else {
      // Another node's verdict of death is only a suspicion here: we give the member its own chance to refute.
      this.apply({ kind: "suspect", id: d.id, incarnation: d.incarnation, by: from }, now, cause);
    }
    const member = this.members.get(d.id);
    if (member && d.info && d.infoVersion > member.infoVersion) {
      member.info = d.info;
      member.infoVersion = d.infoVersion;
      this.outbox.push({ type: "member-changed", member: toMember(member) });
    }
  }

  private syncMessage(reply: boolean): SwimMessage {
    const members: MemberDigest[] = [...this.members.values()].map((m) => ({
      id: m.id,
      address: m.address,
      incarnation: m.incarnation,
      state: m.state,
      infoVersion: m.infoVersion,
      info: m.info,
    }));
    members.push({
      id: this.self.id,
      address: this.self.address,
      incarnation: this.incarnation,
      state: this.leaving ? "left" : "alive",
      infoVersion: this.selfInfoVersion,
      info: this.selfInfo,
    });
    return { type: "sync", from: this.self.id, cluster: this.cluster, reply, members };
  }

  /**
   * A member we do not know spoke to us: the gossip of its joining passed us by (sends to a node behind NAT fail
   * until its relays are known), so we pull a full view now rather than at the next push-pull, a few periods
   * apart at most.
   */
  private heardFromStranger(now: number): void {
    if (now < this.nextStrangerSyncAt) return;
    this.nextStrangerSyncAt = now + STRANGER_SYNC_PERIODS * this.timing.probeIntervalMs;
    const peer = this.pick(this.membersIn("alive"), 1)[0];
    if (peer) this.sendSync(peer, false);
  }

  private sendSync(to: Endpoint, reply: boolean): void {
    this.send(to, this.syncMessage(reply));
  }

  private tryJoin(now: number): void {
    const targets = new Set<string>(this.seeds);
    for (const m of this.members.values()) if (m.state !== "left") targets.add(m.address);
    for (const address of targets) this.sendSync({ address }, false);
    this.nextJoinAt = now + this.jitter(this.joinBackoffMs);
    this.joinBackoffMs = Math.min(this.joinBackoffMs * 2, this.timing.joinRetryMaxMs);
  }

  private purge(now: number): void {
    for (const m of this.members.values()) {
      if ((m.state === "dead" || m.state === "left") && now - m.stateSince >= this.timing.purgeAfterMs) {
        this.members.delete(m.id);
        this.outbox.push({ type: "member-purged", id: m.id });
      }
    }
  }

  // ---- dissemination ------------------------------------------------------------------------

  private enqueue(update: Update): void {
    const key = update.kind === "info" ? `info:${update.id}` : `member:${update.id}`;
    this.broadcasts.set(key, { update, transmits: 0 });
  }

  /** The least-sent pending updates; each is retransmitted about λ·log(n) times, then dropped. */
  private piggyback(): Update[] {
    if (this.broadcasts.size === 0) return [];
    const limit = 4 * Math.ceil(Math.log10(this.members.size + 2));
    const chosen = [...this.broadcasts.entries()]
      .sort((a, b) => a[1].transmits - b[1].transmits)
      .slice(0, Math.min(MAX_PIGGYBACK, MAX_UPDATES_PER_MESSAGE));
    for (const [key, b] of chosen) {
      b.transmits += 1;
      if (b.transmits >= limit) this.broadcasts.delete(key);
    }
    return chosen.map(([, b]) => b.update);
  }

  private gossipRound(): void {
    if (this.broadcasts.size === 0) return;
    for (const m of this.pick(this.membersIn("alive", "suspect"), this.timing.gossipFanout)) {
      const updates = this.piggyback();
      if (updates.length === 0) return;
      this.send(m, { type: "gossip", from: this.self.id, updates });
    }
  }

  // ---- helpers ------------------------------------------------------------------------------

  private send(to: Endpoint, message: SwimMessage): void {
    const target = to.id ? this.members.get(to.id) : undefined;
    if (target?.state === "suspect" && message.type !== "sync") {
      // Tell a suspect directly: the gossip about it may have been spent while it could not listen.
      const news: Update = { kind: "suspect", id: target.id, incarnation: target.incarnation, by: this.self.id };
      const others = message.updates.filter((u) => u.id !== target.id || u.kind === "info");
      message = { ...message, updates: [news, ...others].slice(0, MAX_UPDATES_PER_MESSAGE) };
    }
    this.outbox.push({ type: "send", to: { id: to.id, address: to.address }, message });
  }

  private trace(id: string, from: PeerState | null, to: PeerState, event: string, cause: string, at: number): void {
    this.outbox.push({ type: "trace", record: { machine: "peer", instance: id, from, to, event, cause, at } });
  }

  private membersIn(...states: PeerState[]): MemberRecord[] {
    return [...this.members.values()].filter((m) => states.includes(m.state));
  }

  private pick<T>(items: T[], n: number): T[] {
    return this.shuffle(items).slice(0, n);
  }

  private shuffle<T>(items: T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }

  /** A duration spread uniformly over ±25 %, so periodic work does not synchronise across nodes. */
  private jitter(ms: number): number {
    return Math.round(ms * (0.75 + this.random() * 0.5));
  }
}

function toMember(m: MemberRecord): Member {
  return {
    id: m.id,
    address: m.address,
    state: m.state,
    incarnation: m.incarnation,
    stateSince: m.stateSince,
    lastSeenAt: m.lastSeenAt,
    infoVersion: m.infoVersion,
    info: m.info,
    rttMs: m.rttMs,
  };
}
