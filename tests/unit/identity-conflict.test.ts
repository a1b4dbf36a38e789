import { expect, test } from "bun:test";
import { deriveTiming } from "../../src/config/timing.ts";
import { type Effect, Membership } from "../../src/membership/swim.ts";

/** One id at two addresses: the core says so (the runtime warns, once a minute), on both sides. */

const timing = deriveTiming("lan");

function core(id: string, address: string, incarnation = 1): Membership {
  const m = new Membership({
    self: { id, address },
    cluster: "t",
    incarnation,
    timing,
    seeds: [],
    now: 0,
    random: () => 0.5,
  });
  m.takeEffects();
  return m;
}

const conflicts = (m: Membership) =>
  m.takeEffects().filter((e): e is Extract<Effect, { type: "identity-conflict" }> => e.type === "identity-conflict");

test("a member announced alive at another address is reported, naming both", () => {
  const n1 = core("n1", "10.0.0.1:8770");
  n1.receive(
    { type: "gossip", from: "n2", updates: [{ kind: "alive", id: "n3", address: "10.0.0.3:8770", incarnation: 1 }] },
    0,
  );
  expect(conflicts(n1)).toEqual([]);
  n1.receive(
    { type: "gossip", from: "n2", updates: [{ kind: "alive", id: "n3", address: "10.0.0.9:8770", incarnation: 2 }] },
    1,
  );
  expect(conflicts(n1)).toEqual([
    { type: "identity-conflict", id: "n3", known: "10.0.0.3:8770", claimed: "10.0.0.9:8770", self: false },
  ]);
  expect(n1.get("n3")?.address).toBe("10.0.0.9:8770");
});

test("a node hearing its own id alive at another address reports it (and refutes)", () => {
  const n3 = core("n3", "10.0.0.3:8770", 4);
  n3.receive(
    { type: "gossip", from: "n2", updates: [{ kind: "alive", id: "n3", address: "10.0.0.9:8770", incarnation: 5 }] },
    0,
  );
  expect(conflicts(n3)).toEqual([
    { type: "identity-conflict", id: "n3", known: "10.0.0.3:8770", claimed: "10.0.0.9:8770", self: true },
  ]);
  expect(n3.currentIncarnation).toBe(6);
});
