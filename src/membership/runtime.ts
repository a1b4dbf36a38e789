import type { Timing } from "../config/timing.ts";
import type { Db } from "../db/client.ts";
import { deletePeer, savePeers, writeMeta } from "../db/peers.ts";
import type { TraceStore } from "../db/traces.ts";
import type { CallError, PeerTransport } from "../net/peer-transport.ts";
import { ROUTES } from "../net/route-table.ts";
import { GuardedWrite } from "../observability/guarded-write.ts";
import type { Logger } from "../observability/log.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { SwimMessage } from "./messages.ts";
import type { Effect, Endpoint, Member, Membership } from "./swim.ts";

export const INCARNATION_KEY = "incarnation";
const MAX_IN_FLIGHT = 512;
const CONFLICT_WARN_EVERY_MS = 60_000;

export interface MembershipRuntimeOptions {
  core: Membership;
  db: Db;
  traces: TraceStore;
  log: Logger;
  metrics: Metrics;
  timing: Timing;
  transport: PeerTransport;
  now?: () => number;
}

/**
 * Carries out what the membership core decides: sends its messages through the peer transport (every call
 * with a deadline, a bound on calls in flight), persists peers and incarnation, records traces,
 * and drives the core's clock.
 */
export class MembershipRuntime {
  private readonly core: Membership;
  private readonly now: () => number;
  private readonly dirty = new Map<string, Member>();
  private readonly conflictWarnedAt = new Map<string, number>();
  /** Peers purged from memory whose rows are still to be deleted. */
  private readonly purged = new Set<string>();
  /** An incarnation not yet durable (its write failed); written before any other peer state. */
  private unsavedIncarnation: number | null = null;
  /** Peer rows, purges and the incarnation: a full disk delays them, never ends the process. */
  private readonly writes: GuardedWrite;
  private readonly timers: Array<ReturnType<typeof setInterval>> = [];
  private inFlight = 0;
  private readonly sent: (labels?: Record<string, string>, by?: number) => void;
  private readonly failed: (labels?: Record<string, string>, by?: number) => void;

  constructor(private readonly opts: MembershipRuntimeOptions) {
    this.core = opts.core;
    this.now = opts.now ?? Date.now;
    this.writes = new GuardedWrite(opts.log, "peer state write");
    this.sent = opts.metrics.counter("p2p_swim_messages_sent_total", "SWIM messages sent, by type");
    this.failed = opts.metrics.counter("p2p_swim_send_failures_total", "SWIM sends that got no answer, by kind");
    opts.metrics.gauge("p2p_peers", "Peers known to this node, by state", () => {
      const counts = { alive: 0, suspect: 0, dead: 0, left: 0 };
      for (const m of this.core.list()) counts[m.state]++;
      return Object.entries(counts).map(([state, n]) => [{ state }, n]);
    });
    opts.metrics.gauge("p2p_incarnation", "This node's SWIM incarnation", () => this.core.currentIncarnation);
  }

  start(): void {
    const { timing } = this.opts;
    this.run();
    this.timers.push(setInterval(() => this.tick(), timing.tickMs));
    this.timers.push(setInterval(() => this.persist(), 1_000));
    this.timers.push(setInterval(() => this.opts.traces.flush(), timing.traceFlushMs));
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.persist();
    this.opts.traces.flush();
  }

  tick(): void {
    this.core.tick(this.now());
    this.run();
  }

  /** Handles messages a peer sent us; returns the replies for the HTTP response. */
  receive(messages: readonly SwimMessage[]): SwimMessage[] {
    const replies: SwimMessage[] = [];
    for (const m of messages) replies.push(...this.core.receive(m, this.now()));
    this.run();
    return replies;
  }

  /** Tells every reachable member that we leave, waiting at most one round trip for them to hear it. */
  async leave(): Promise<void> {
    this.core.leave();
    await Promise.allSettled(this.run());
  }

  private run(): Promise<void>[] {
    const sends: Promise<void>[] = [];
    for (const effect of this.core.takeEffects()) {
      const pending = this.apply(effect);
      if (pending) sends.push(pending);
    }
    return sends;
  }

  /** Once a minute per id: an id seen at two addresses is an operator's mistake more often than a move. */
  private warnConflict(c: Extract<Effect, { type: "identity-conflict" }>): void {
    const now = Date.now();
    if (now - (this.conflictWarnedAt.get(c.id) ?? Number.NEGATIVE_INFINITY) < CONFLICT_WARN_EVERY_MS) return;
    if (this.conflictWarnedAt.size >= 1_024) this.conflictWarnedAt.clear();
    this.conflictWarnedAt.set(c.id, now);
    const message = c.self
      ? `another node claims our id ${c.id} from ${c.claimed} (we are at ${c.known}): two nodes started with the same id?`
      : `${c.id} is now announced at ${c.claimed}, was ${c.known}: a restart at a new address, or two nodes with the id ${c.id}?`;
    this.opts.log.warn(message, { peer: c.id, known: c.known, claimed: c.claimed });
  }

  private apply(effect: Effect): Promise<void> | undefined {
    switch (effect.type) {
      case "send":
        return this.send(effect.to, effect.message);
      case "trace": {
        const r = effect.record;
        this.opts.traces.record(r);
        if (r.from !== r.to)
          this.opts.log.info("peer state", { peer: r.instance, from: r.from, to: r.to, cause: r.cause });
        return undefined;
      }
      case "member-changed":
        this.dirty.set(effect.member.id, effect.member);
        return undefined;
      case "member-purged":
        this.dirty.delete(effect.id);
        this.purged.add(effect.id);
        this.persist();
        return undefined;
      case "identity-conflict":
        this.warnConflict(effect);
        return undefined;
      case "incarnation":
        // Durable before the refutation leaves this node, so a restart never reuses an incarnation. On a
        // full disk the refutation leaves anyway (staying alive matters more) and the write is retried: a
        // restart before it lands starts below the refuted incarnation and refutes once more.
        this.unsavedIncarnation = effect.incarnation;
        this.persist();
        this.opts.log.info("refuting", { incarnation: effect.incarnation, cause: effect.cause });
        return undefined;
    }
  }

  private async send(to: Endpoint, message: SwimMessage): Promise<void> {
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.failed({ kind: "overloaded" });
      return;
    }
    const { timing, transport } = this.opts;
    this.inFlight++;
    this.sent({ type: message.type });
    try {
      const answer = (await transport.request(to, ROUTES.peerSwim, {
        body: { messages: [message] },
        timeoutMs: message.type === "sync" ? timing.syncTimeoutMs : timing.indirectProbeTimeoutMs,
      })) as { messages?: SwimMessage[] };
      const replies = answer.messages ?? [];
      if (replies.length > 0) {
        const back = this.receive(replies);
        for (const m of back) void this.send(to, m);
      }
    } catch (e) {
      const err = e as CallError;
      this.failed({ kind: err.kind ?? "error" });
      this.opts.log.debug("swim send failed", { to: to.id ?? to.address, type: message.type, error: err.message });
    } finally {
      this.inFlight--;
    }
  }

  /** Writes what is pending; what a failed write (a full disk) leaves pending is tried again after a backoff. */
  private persist(): void {
    if (this.unsavedIncarnation === null && this.purged.size === 0 && this.dirty.size === 0) return;
    const written = this.writes.run(() =>
      this.opts.db.transaction((tx) => {
        const incarnation = this.unsavedIncarnation;
        if (incarnation !== null) writeMeta(tx as unknown as Db, INCARNATION_KEY, String(incarnation));
        for (const id of this.purged) deletePeer(tx as unknown as Db, id);
        savePeers(tx as unknown as Db, this.dirty.values());
      }),
    );
    if (!written) return;
    this.unsavedIncarnation = null;
    this.purged.clear();
    this.dirty.clear();
  }
}
