import { describe, expect, test } from "bun:test";
import { choosePiece, type SourceStanding } from "../../src/sync/piece-choice.ts";
import { swarm } from "./pieces-sim.ts";

const ONLY = process.env.PIECES_SEED ? Number(process.env.PIECES_SEED) : undefined;
const SEEDS =
  ONLY !== undefined ? [ONLY] : Array.from({ length: Number(process.env.PIECES_SEEDS ?? 300) }, (_, i) => i + 1);

type Choose = typeof choosePiece;

/** The real choice, over sources as `change` shows them; the source it picks is the fetcher's own. */
const over =
  (change: (s: SourceStanding) => SourceStanding): Choose =>
  (i) => {
    const shown = new Map(i.sources.map((s) => [change(s), s] as const));
    const pick = choosePiece({ ...i, sources: [...shown.keys()] });
    const source = pick && shown.get(pick.source);
    return pick && source ? { piece: pick.piece, source } : null;
  };

/** Faulty piece choices, each planted into the real fetcher, and what the world says when it catches it. */
const PLANTED: Array<[string, Choose, RegExp]> = [
  ["asks a benched source before its time", over((s) => ({ ...s, notBefore: 0 })), /while it is benched/],
  ["ignores which pieces a source holds", over((s) => ({ ...s, source: { id: s.source.id } })), /does not hold/],
  [
    "ignores the per-source limit",
    (i) => choosePiece({ ...i, perSource: Number.POSITIVE_INFINITY }),
    /requests to it in flight/,
  ],
  [
    "asks for a piece already in flight",
    (i) => choosePiece({ ...i, inFlight: { has: () => false } }),
    /while that piece is in flight/,
  ],
  [
    "never asks a source a piece failed from again",
    (i) => {
      const pick = choosePiece(i);
      return pick && i.tried(pick.piece)?.has(pick.source.source.id) ? null : pick;
    },
    /starved/,
  ],
  [
    "takes everything from the origin it can",
    (i) => {
      const origin = i.sources.filter((s) => s.source.id === "origin");
      return choosePiece({ ...i, sources: origin.length > 0 ? origin : i.sources });
    },
    /the origin served/,
  ],
];

/** How many seeds a planted fault may take to show. */
const WITHIN = 50;

describe("piece scheduling in a seeded swarm", () => {
  test(`every request within bounds and to a holder; every peer completes, mostly from peers (${SEEDS.length} seeds)`, async () => {
    const struck = { timeout: 0, failed: 0, corrupt: 0, busy: 0, refused: 0, restarted: 0 };
    for (const seed of SEEDS) {
      const r = await swarm(seed);
      if (r.violations.length > 0)
        throw new Error(
          `seed ${seed}: ${r.violations.slice(0, 5).join("; ")}\nreplay: PIECES_SEED=${seed} bun test tests/sim/pieces.test.ts`,
        );
      for (const k of Object.keys(struck) as Array<keyof typeof struck>) struck[k] += r.faults[k];
    }
    // Every kind of fault struck somewhere: the world did not quietly stop testing one.
    if (ONLY === undefined) for (const n of Object.values(struck)) expect(n).toBeGreaterThan(0);
  }, 120_000);

  test("the same seed gives the same run", async () => {
    expect(JSON.stringify(await swarm(7))).toBe(JSON.stringify(await swarm(7)));
  });

  for (const [name, choose, why] of PLANTED) {
    test(`a planted fault is caught: a choice that ${name}`, async () => {
      for (let seed = 1; seed <= WITHIN; seed++) {
        const r = await swarm(seed, choose);
        if (r.violations.length > 0) return expect(r.violations.join("; ")).toMatch(why);
      }
      throw new Error(`no seed up to ${WITHIN} caught it`);
    }, 60_000);
  }
});
