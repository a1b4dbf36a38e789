import { describe, expect, test } from "bun:test";
import { holdsCategory, originShare, receiverOrder, staggerDelayMs } from "../../src/sync/policy.ts";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);
const NODES = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"];

describe("which nodes hold a category", () => {
  test('"all" reaches every node, "none" no node', () => {
    expect(holdsCategory({ to: "all" }, [])).toBe(true);
    expect(holdsCategory({ to: "none" }, ["training"])).toBe(false);
  });

  test("a capability list reaches the nodes with any of them", () => {
    const games = { to: ["training", "export"] };
    expect(holdsCategory(games, ["selfplay", "training"])).toBe(true);
    expect(holdsCategory(games, ["export"])).toBe(true);
    expect(holdsCategory(games, ["selfplay", "gauntlet"])).toBe(false);
    expect(holdsCategory(games, [])).toBe(false);
  });
});

describe("the per-file receiver order", () => {
  test("every node computes the same order, whatever order it lists the nodes in", () => {
    const order = receiverOrder(SHA_A, NODES);
    expect(receiverOrder(SHA_A, [...NODES].reverse())).toEqual(order);
    expect([...order].sort()).toEqual([...NODES].sort());
  });

  test("different files get different orders, so no node is always first", () => {
    const firsts = new Set(
      Array.from({ length: 64 }, (_, i) => receiverOrder(i.toString(16).padStart(64, "0"), NODES)[0]),
    );
    expect(firsts.size).toBeGreaterThan(4);
    expect(receiverOrder(SHA_A, NODES)).not.toEqual(receiverOrder(SHA_B, NODES));
  });

  test("the first receiver may take every piece from the origins, each later one its own share", () => {
    const order = receiverOrder(SHA_A, NODES);
    const [first, ...later] = order as [string, ...string[]];
    expect(Array.from({ length: 20 }, (_, p) => originShare(SHA_A, first, NODES)(p)).every(Boolean)).toBe(true);
    for (let piece = 0; piece < 50; piece++) {
      const takers = later.filter((n) => originShare(SHA_A, n, NODES)(piece));
      expect(takers).toHaveLength(1);
    }
    expect(originShare(SHA_A, "not-a-receiver", NODES)(3)).toBe(true);
  });
});

describe("staggered adoption", () => {
  test("delays spread over the window by place in the order, the first at once", () => {
    const order = receiverOrder(SHA_A, NODES);
    const delays = order.map((n) => staggerDelayMs(SHA_A, n, NODES, 8_000));
    expect(delays).toEqual([0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000]);
  });

  test("no window, no delay", () => {
    expect(NODES.map((n) => staggerDelayMs(SHA_A, n, NODES, 0))).toEqual(NODES.map(() => 0));
  });
});
