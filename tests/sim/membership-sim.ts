import { deriveTiming, type Timing } from "../../src/config/timing.ts";
import type { PeerState } from "../../src/machines/peer-health.ts";
import type { SwimMessage } from "../../src/membership/messages.ts";
import { type Member, Membership } from "../../src/membership/swim.ts";
import type { TraceRecord } from "../../src/observability/trace.ts";
import type { NodeInfo } from "../../src/shared/node-info.ts";
import { EventQueue } from "./event-queue.ts";
import { seededRandom } from "./rng.ts";

/**
 * Many membership cores in one process over a seeded network and clock. Messages are delayed,
 * lost and reordered by the seed; nodes crash (drop everything), pause (queue input, as SIGSTOP)
 * and restart with their durable state. A paused node's callers time out: it handles their buffered requests on resume, but its replies are lost. Same seed, same run: a failing seed replays exactly.
 */
export interface SimOptions {
  seed: number;
  nodes: number;
  timing?: Timing;
  lossRate?: number;
  minDelayMs?: number;
  maxDelayMs?: number;
}

type NodeStatus = "up" | "crashed" | "paused";

interface SimNode {
  id: string;
  address: string;
  core: Membership;
  status: NodeStatus;
  incarnation: number;
  remembered: Map<string, Member>;
  /** Requests the kernel buffered while the process was stopped; their callers have given up. */
  backlog: SwimMessage[];
}

export class SimCluster {
  now = 1_000_000;
  readonly timing: Timing;
  readonly random: () => number;
  readonly traces: Array<TraceRecord & { node: string }> = [];
  readonly nodes = new Map<string, SimNode>();
  private readonly byAddress = new Map<string, SimNode>();
  private readonly queue = new EventQueue();
  private order = 0;
  lossRate: number;
  private readonly minDelay: number;
  private readonly maxDelay: number;
  messagesSent = 0;

  constructor(readonly opts: SimOptions) {
    this.timing = opts.timing ?? deriveTiming("lan");
    this.random = seededRandom(opts.seed);
    this.lossRate = opts.lossRate ?? 0;
    this.minDelay = opts.minDelayMs ?? 1;
    this.maxDelay = opts.maxDelayMs ?? 20;
    const addresses = Array.from({ length: opts.nodes }, (_, i) => `10.0.0.${i + 1}:8770`);
    addresses.forEach((address, i) => {
      const id = `n${i + 1}`;
      // Like the real cluster.toml: every node is seeded with the others' addresses.
      const node: SimNode = {
        id,
        address,
        core: this.makeCore(id, address, 1, addresses),
        status: "up",
        incarnation: 1,
        remembered: new Map(),
        backlog: [],
      };
      this.nodes.set(id, node);
      this.byAddress.set(address, node);
      this.scheduleTick(node, this.now + Math.floor(this.random() * this.timing.tickMs));
    });
  }

  private makeCore(id: string, address: string, incarnation: number, seeds: readonly string[]): Membership {
    const core = new Membership({
      self: { id, address },
      cluster: "sim",
      incarnation,
      timing: this.timing,
      seeds,
      now: this.now,
      random: this.random,
    });
    core.setInfo(simInfo(this.now));
    return core;
  }

  private at(time: number, run: () => void): void {
    this.queue.push({ at: time, order: this.order++, run });
  }

  private scheduleTick(node: SimNode, at: number): void {
    const core = node.core;
    this.at(at, () => {
      if (node.core !== core || node.status === "crashed") return;
      if (node.status === "up") {
        core.tick(this.now);
        this.drain(node);
      }
      this.scheduleTick(node, this.now + this.timing.tickMs);
    });
  }

  private drain(node: SimNode): void {
    for (const effect of node.core.takeEffects()) {
      switch (effect.type) {
        case "send":
          this.deliver(node, effect.to.address, effect.message);
          break;
        case "trace":
          this.traces.push({ ...effect.record, node: node.id });
          break;
        case "member-changed":
          node.remembered.set(effect.member.id, effect.member);
          break;
        case "member-purged":
          node.remembered.delete(effect.id);
          break;
        case "incarnation":
          node.incarnation = effect.incarnation;
          break;
      }
    }
  }

  private deliver(from: SimNode, address: string, message: SwimMessage): void {
    this.messagesSent++;
    if (this.random() < this.lossRate) return;
    const to = this.byAddress.get(address);
    if (!to) return;
    const delay = this.minDelay + this.random() * (this.maxDelay - this.minDelay);
    this.at(this.now + delay, () => this.arrive(from, to, message));
  }

  private arrive(from: SimNode, to: SimNode, message: SwimMessage): void {
    if (to.status === "crashed") return;
    if (to.status === "paused") {
      to.backlog.push(message);
      return;
    }
    const replies = to.core.receive(message, this.now);
    this.drain(to);
    for (const reply of replies) this.deliver(to, from.address, reply);
  }

  /** Advances simulated time, running every event due before `until`. */
  runUntil(until: number): void {
    for (let next = this.queue.peek(); next && next.at <= until; next = this.queue.peek()) {
      this.queue.pop();
      this.now = Math.max(this.now, next.at);
      next.run();
    }
    this.now = until;
  }

  run(ms: number): void {
    this.runUntil(this.now + ms);
  }

  /** Steps in small increments until `predicate` holds; returns the time it took, or throws past the deadline. */
  waitFor(predicate: () => boolean, deadlineMs: number, what: string): number {
    const start = this.now;
    while (!predicate()) {
      if (this.now - start > deadlineMs)
        throw new Error(`seed ${this.opts.seed}: not within ${deadlineMs} ms: ${what}`);
      this.run(this.timing.tickMs);
    }
    return this.now - start;
  }

  node(id: string): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** What `observer` believes about `target`. */
  view(observer: string, target: string): PeerState | undefined {
    return this.node(observer).core.get(target)?.state;
  }

  up(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.status !== "crashed");
  }

  /** Every running node sees every other running node in `state`. */
  allSee(target: string, state: PeerState, observers = this.up()): boolean {
    return observers.every((o) => o.id === target || this.view(o.id, target) === state);
  }

  converged(): boolean {
    const up = this.up();
    return up.every((o) => up.every((t) => t.id === o.id || this.view(o.id, t.id) === "alive"));
  }

  crash(id: string): void {
    this.node(id).status = "crashed";
  }

  pause(id: string): void {
    this.node(id).status = "paused";
  }

  /** The stopped process reads what was buffered, but its replies go to callers that have hung up. */
  resume(id: string): void {
    const node = this.node(id);
    node.status = "up";
    for (const message of node.backlog.splice(0)) node.core.receive(message, this.now);
    this.drain(node);
  }

  /** Restarts a crashed node from its durable state (incarnation and remembered peers). */
  restart(id: string): void {
    const node = this.node(id);
    node.incarnation += 1;
    node.core = this.makeCore(node.id, node.address, node.incarnation, [...this.byAddress.keys()]);
    node.core.restore([...node.remembered.values()], this.now);
    node.status = "up";
    node.backlog = [];
    this.drain(node);
    this.scheduleTick(node, this.now + this.timing.tickMs);
  }

  leave(id: string): void {
    const node = this.node(id);
    node.core.leave();
    this.drain(node);
    node.status = "crashed";
  }
}

export function simInfo(now: number): NodeInfo {
  return {
    version: "sim",
    capabilities: ["selfplay"],
    slots: 1,
    voter: false,
    nat: false,
    cpu: { count: 1, load1: 0 },
    memory: { totalBytes: 1, freeBytes: 1 },
    disk: { totalBytes: 1, freeBytes: 1 },
    gpus: [],
    sampledAt: now,
  };
}
