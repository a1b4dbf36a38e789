import { describe, expect, test } from "bun:test";
import { deriveTiming } from "../../src/config/timing.ts";
import type { SwimMessage, Update } from "../../src/membership/messages.ts";
import { Suspicion, suspicionBounds, suspicionTimeoutMs } from "../../src/membership/suspicion.ts";
import { type Effect, Membership } from "../../src/membership/swim.ts";
import { seededRandom } from "../sim/rng.ts";

const timing = deriveTiming("lan");
const TEN = suspicionBounds(10, timing);

describe("the suspicion timeout shrinks with independent confirmations (Lifeguard)", () => {
  test("no confirmation waits the maximum, the expected number the minimum, and it falls in between", () => {
    const bounds = { minMs: 2_000, maxMs: 12_000, expected: 3 };
    const timeouts = [0, 1, 2, 3, 4].map((c) => suspicionTimeoutMs(c, bounds));
    expect(timeouts[0]).toBe(12_000);
    expect(timeouts[1]).toBe(7_000); // 12 s - 10 s * log 2 / log 4
    expect(timeouts[2]).toBe(4_075);
    expect(timeouts[3]).toBe(2_000);
    expect(timeouts[4]).toBe(2_000);
  });

  test("where nobody could confirm, the minimum applies from the start", () => {
    expect(suspicionTimeoutMs(0, { minMs: 2_000, maxMs: 12_000, expected: 0 })).toBe(2_000);
  });

  test("bounds follow the cluster: log10 of its size above 10 members, at most n - 2 confirmations", () => {
    expect(TEN).toEqual({
      minMs: timing.suspicionTimeoutMs,
      maxMs: timing.suspicionTimeoutMs * timing.suspicionMaxMultiplier,
      expected: 3,
    });
    expect(suspicionBounds(100, timing).minMs).toBe(timing.suspicionTimeoutMs * 2);
    expect(suspicionBounds(4, timing).expected).toBe(2);
    expect(suspicionBounds(2, timing).expected).toBe(0);
  });

  test("a confirmation counts once per member, never from the first suspector, and at most the expected number", () => {
    const s = new Suspicion(0, "n2", TEN);
    expect(s.confirm("n2")).toBe(false);
    expect(s.confirm("n3")).toBe(true);
    expect(s.confirm("n3")).toBe(false);
    expect(s.confirm("n5")).toBe(true);
    expect(s.confirm("n6")).toBe(true);
    expect(s.confirm("n7")).toBe(false);
    expect(s.confirmations).toBe(3);
    expect(s.deadline).toBe(TEN.minMs);
    s.extend(1_500);
    expect(s.deadline).toBe(TEN.minMs + 1_500);
  });
});

/**
 * One membership core (n1) among ten members, driven message by message. Every ping it sends is acked at once,
 * except those to `unreachable`, so its own probes only fail where a test says so; every send is recorded.
 */
class OneCore {
  now = 1_000_000;
  readonly core: Membership;
  readonly sent: Array<{ to: string; message: SwimMessage }> = [];
  readonly unreachable = new Set<string>();

  constructor() {
    this.core = new Membership({
      self: { id: "n1", address: "10.0.0.1:8770" },
      cluster: "t",
      incarnation: 1,
      timing,
      seeds: [],
      now: this.now,
      random: seededRandom(7),
    });
    const members = Array.from({ length: 9 }, (_, i) => ({
      id: `n${i + 2}`,
      address: `10.0.0.${i + 2}:8770`,
      incarnation: 1,
      state: "alive" as const,
      infoVersion: 0,
      info: null,
    }));
    this.core.receive({ type: "sync", from: "n2", cluster: "t", reply: true, members }, this.now);
    this.drain();
  }

  /** News from a peer, as gossip. */
  hear(from: string, update: Update): void {
    this.core.receive({ type: "gossip", from, updates: [update] }, this.now);
    this.drain();
  }

  suspectedBy(by: string, incarnation = 1): void {
    this.hear(by, { kind: "suspect", id: "n4", incarnation, by });
  }

  /** Ticks the core until `ms` have passed. */
  run(ms: number): void {
    const until = this.now + ms;
    while (this.now < until) {
      this.now = Math.min(until, this.now + timing.tickMs);
      this.core.tick(this.now);
      this.drain();
    }
  }

  /** The time from now until n4 is dead, or null if it is not within `ms`. */
  deadWithin(ms: number): number | null {
    const start = this.now;
    while (this.now - start < ms) {
      this.run(timing.tickMs);
      if (this.state("n4") === "dead") return this.now - start;
    }
    return null;
  }

  state(id: string) {
    return this.core.get(id)?.state;
  }

  private drain(): void {
    const effects: Effect[] = this.core.takeEffects();
    for (const e of effects) {
      if (e.type !== "send" || !e.to.id) continue;
      this.sent.push({ to: e.to.id, message: e.message });
      if (e.message.type === "ping" && !this.unreachable.has(e.to.id)) {
        this.core.receive({ type: "ack", from: e.to.id, seq: e.message.seq, updates: [] }, this.now);
        this.drain();
      }
    }
  }
}

/** Suspect messages about n4 from `by` that n1 sent to other members (not to n4 itself). */
const gossipedSuspicions = (c: OneCore, by: string) =>
  c.sent
    .filter((s) => s.to !== "n4")
    .flatMap((s) => ("updates" in s.message ? s.message.updates : []))
    .filter((u) => u.kind === "suspect" && u.id === "n4" && u.by === by);

describe("suspicion in the membership core", () => {
  test("a lone suspector's word keeps a member suspect for the maximum before it is declared dead", () => {
    const c = new OneCore();
    c.suspectedBy("n2");
    expect(c.state("n4")).toBe("suspect");
    const took = c.deadWithin(TEN.maxMs + 1_000);
    expect(took).not.toBeNull();
    expect(took).toBeGreaterThanOrEqual(TEN.maxMs - timing.tickMs);
    expect(took).toBeLessThanOrEqual(TEN.maxMs + timing.tickMs);
  });

  test("independent confirmations bring it down to the minimum, and not below", () => {
    const c = new OneCore();
    c.suspectedBy("n2");
    c.run(100);
    for (const by of ["n3", "n5", "n6"]) c.suspectedBy(by);
    const took = (c.deadWithin(TEN.maxMs) ?? Number.NaN) + 100;
    expect(took).toBeGreaterThanOrEqual(TEN.minMs);
    expect(took).toBeLessThanOrEqual(TEN.minMs + timing.tickMs);
  });

  test("the same suspector repeating itself is one confirmation, not many", () => {
    const c = new OneCore();
    c.suspectedBy("n2");
    for (let i = 0; i < 5; i++) c.suspectedBy("n3");
    c.suspectedBy("n2");
    const took = c.deadWithin(TEN.maxMs) ?? Number.NaN;
    const oneConfirmation = suspicionTimeoutMs(1, TEN);
    expect(oneConfirmation).toBeGreaterThan(TEN.minMs * 3);
    expect(Math.abs(took - oneConfirmation)).toBeLessThanOrEqual(timing.tickMs);
  });

  test("a refutation still wins over a fully confirmed suspicion", () => {
    const c = new OneCore();
    for (const by of ["n2", "n3", "n5", "n6"]) c.suspectedBy(by);
    c.run(TEN.minMs - 500);
    c.hear("n4", { kind: "alive", id: "n4", address: "10.0.0.4:8770", incarnation: 2 });
    expect(c.state("n4")).toBe("alive");
    c.suspectedBy("n7"); // news of the refuted incarnation: stale
    expect(c.deadWithin(TEN.maxMs * 2)).toBeNull();
    expect(c.state("n4")).toBe("alive");
  });

  test("a new confirmation is gossiped on to other members", () => {
    const c = new OneCore();
    c.suspectedBy("n2");
    c.suspectedBy("n3");
    c.run(timing.gossipIntervalMs * 2);
    expect(gossipedSuspicions(c, "n3").length).toBeGreaterThan(0);
  });

  test("our own failed probe of a suspect confirms another's suspicion, and is gossiped as ours", () => {
    const c = new OneCore();
    c.unreachable.add("n4");
    c.suspectedBy("n2");
    // n1 probes every member once per round of nine periods; its probe of n4 fails within the round.
    c.run(timing.probeIntervalMs * 10);
    expect(gossipedSuspicions(c, "n1").length).toBeGreaterThan(0);
  });

  test("a stall of our own gives the suspect back the time it lost", () => {
    const c = new OneCore();
    for (const by of ["n2", "n3", "n5", "n6"]) c.suspectedBy(by);
    c.run(500);
    const stall = 1_500;
    c.now += stall; // our event loop was blocked: the next tick comes late
    const took = (c.deadWithin(TEN.maxMs) ?? Number.NaN) + 500 + stall;
    expect(took).toBeGreaterThanOrEqual(TEN.minMs + stall);
    expect(took).toBeLessThanOrEqual(TEN.minMs + stall + timing.tickMs * 2);
  });

  test("a verdict of death goes to every live member at once, not only through gossip rounds", () => {
    const c = new OneCore();
    for (const by of ["n2", "n3", "n5", "n6"]) c.suspectedBy(by);
    const before = c.sent.length;
    expect(c.deadWithin(TEN.maxMs)).not.toBeNull();
    const told = new Set(
      c.sent
        .slice(before)
        .filter((s) => s.message.type === "gossip" && s.message.updates.some((u) => u.kind === "dead" && u.id === "n4"))
        .map((s) => s.to),
    );
    expect([...told].sort()).toEqual(["n10", "n2", "n3", "n5", "n6", "n7", "n8", "n9"]);
  });
});
