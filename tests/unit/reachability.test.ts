import { describe, expect, test } from "bun:test";
import { unreachable } from "../../src/net/relay/reachability.ts";

describe("finding that nobody can reach this node", () => {
  const base = { startedAt: 0, silenceMs: 5_000, alivePeers: 3 };

  test("peers alive to it but none of their requests arriving for the silence: unreachable", () => {
    expect(unreachable({ ...base, now: 6_000, lastInboundAt: null })).toBe(true);
    expect(unreachable({ ...base, now: 12_000, lastInboundAt: 6_500 })).toBe(true);
  });

  test("a recent direct request, the first moments after start, or no peer alive: not judged unreachable", () => {
    expect(unreachable({ ...base, now: 12_000, lastInboundAt: 11_000 })).toBe(false);
    expect(unreachable({ ...base, now: 4_000, lastInboundAt: null })).toBe(false);
    // Its own calls out fail too (no peer alive): that is no NAT a relay could help with.
    expect(unreachable({ ...base, now: 60_000, lastInboundAt: null, alivePeers: 0 })).toBe(false);
  });
});
