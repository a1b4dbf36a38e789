import { describe, expect, test } from "bun:test";
import { type RelayCandidate, rankRelays } from "../../src/net/relay/choice.ts";

const member = (id: string, rttMs: number | null, over: Partial<RelayCandidate> = {}): RelayCandidate => ({
  id,
  address: `10.0.0.${id.slice(1)}:7000`,
  alive: true,
  nat: false,
  rttMs,
  ...over,
});

describe("which relays a node behind NAT connects to", () => {
  test("the nearest by measured round trip first, unmeasured ones last", () => {
    const ranked = rankRelays(
      [member("n1", 40), member("n2", null), member("n3", 3.5), member("n4", 12)],
      () => false,
      () => undefined,
    );
    expect(ranked.map((c) => c.id)).toEqual(["n3", "n4", "n1", "n2"]);
  });

  test("never a dead member, one behind NAT, or one held or waiting out a retry", () => {
    const ranked = rankRelays(
      [
        member("n1", 1, { alive: false }),
        member("n2", 2, { nat: true }),
        member("n3", 3),
        member("n4", 4),
        member("n5", 5),
      ],
      (id) => id === "n3",
      () => undefined,
    );
    expect(ranked.map((c) => c.id)).toEqual(["n4", "n5"]);
  });

  test("equal round trips: the one whose lanes opened faster last time, then by id", () => {
    const opened: Record<string, number> = { n1: 30, n2: 5 };
    const ranked = rankRelays(
      [member("n1", null), member("n3", null), member("n2", null)],
      () => false,
      (id) => opened[id],
    );
    expect(ranked.map((c) => c.id)).toEqual(["n3", "n2", "n1"]);
  });
});
