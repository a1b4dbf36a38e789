import { expect, test } from "bun:test";
import { deriveTiming } from "../../src/config/timing.ts";
import { type Effect, Membership } from "../../src/membership/swim.ts";

const timing = deriveTiming("lan");

const syncsSent = (m: Membership) =>
  m
    .takeEffects()
    .filter((e): e is Extract<Effect, { type: "send" }> => e.type === "send" && e.message.type === "sync")
    .map((e) => e.to.id ?? e.to.address);

/**
 * n6 knows n2 but missed the gossip of n1's joining. n1's ping reaches it: n6 pulls a full view from a member it
 * knows at once (not at the next push-pull, 30 periods on), and a stream of such pings starts one such sync per
 * four periods at most.
 */
test("a message from a member not known starts an early anti-entropy sync, a few periods apart at most", () => {
  const n6 = new Membership({
    self: { id: "n6", address: "10.0.0.6:8770" },
    cluster: "t",
    incarnation: 1,
    timing,
    seeds: [],
    now: 0,
    random: () => 0.5,
  });
  n6.receive(
    { type: "gossip", from: "n2", updates: [{ kind: "alive", id: "n2", address: "10.0.0.2:8770", incarnation: 1 }] },
    0,
  );
  n6.takeEffects();
  const ping = (at: number) => n6.receive({ type: "ping", from: "n1", seq: at, updates: [] }, at);

  expect(ping(10).map((m) => m.type)).toEqual(["ack"]);
  expect(syncsSent(n6)).toEqual(["n2"]);
  ping(10 + timing.probeIntervalMs);
  expect(syncsSent(n6)).toEqual([]);
  ping(10 + 4 * timing.probeIntervalMs);
  expect(syncsSent(n6)).toEqual(["n2"]);

  // A known sender, or one whose own gossip announces it, starts nothing.
  n6.receive({ type: "ping", from: "n2", seq: 99, updates: [] }, 10_000);
  n6.receive(
    {
      type: "ping",
      from: "n3",
      seq: 100,
      updates: [{ kind: "alive", id: "n3", address: "10.0.0.3:8770", incarnation: 1 }],
    },
    20_000,
  );
  expect(syncsSent(n6)).toEqual([]);
});
