import { describe, expect, test } from "bun:test";
import type { DataCategory } from "../../src/config/load.ts";
import type { FileEntry, Manifest } from "../../src/sync/model.ts";
import { planTransfers, type Want, wantedFiles } from "../../src/sync/plan.ts";

const games: DataCategory = { name: "games", root: "/d/games", globs: ["**"], to: "all", swarm: false, staggerMs: 0 };
const models: DataCategory = {
  name: "models",
  root: "/d/models",
  globs: ["**"],
  to: ["training"],
  swarm: false,
  staggerMs: 0,
};

const file = (path: string, sha: string, mtimeMs = 1): FileEntry => ({
  path,
  size: 10,
  mtimeMs,
  sha256: sha.repeat(64),
});
const manifest = (node: string, category: string, files: FileEntry[]): [string, Manifest] => [
  `${node}/${category}`,
  { node, category, digest: `${node}-${files.length}`, files, retired: [] },
];

describe("what to fetch from whom", () => {
  const base = {
    categories: [games, models],
    capabilities: ["selfplay"],
    local: () => [],
    alive: new Set(["n2", "n3"]),
    rules: () => [],
  };

  test("a file several live peers hold alike lists them all as origins; a dead peer's files count for nothing", () => {
    const remote = new Map([
      manifest("n2", "games", [file("a.npz", "a")]),
      manifest("n3", "games", [file("a.npz", "a")]),
      manifest("n4", "games", [file("b.npz", "b")]),
    ]);
    const wants = wantedFiles({ ...base, remote });
    expect(wants.map((w) => [w.entry.path, [...w.origins]])).toEqual([["a.npz", ["n2", "n3"]]]);
  });

  test("a path held differently goes to the newest copy; what this node holds or may not hold is not wanted", () => {
    const remote = new Map([
      manifest("n2", "games", [file("a.npz", "a", 5), file("mine.npz", "m")]),
      manifest("n3", "games", [file("a.npz", "c", 9)]),
      manifest("n2", "models", [file("m1.bin", "d")]),
    ]);
    const wants = wantedFiles({ ...base, remote, local: (c) => (c === "games" ? [file("mine.npz", "m")] : []) });
    expect(wants.map((w) => [w.entry.sha256[0], [...w.origins]])).toEqual([["c", ["n3"]]]);
  });

  test("a retired file is never fetched", () => {
    const remote = new Map([manifest("n2", "games", [file("run1/0/a.npz", "a"), file("run1/3/b.npz", "b")])]);
    const wants = wantedFiles({ ...base, remote, rules: () => [{ under: "run1", below: 2, except: [] }] });
    expect(wants.map((w) => w.entry.path)).toEqual(["run1/3/b.npz"]);
  });
});

describe("which transfers start now", () => {
  const want = (path: string, sha: string, category = games): Want => ({
    category,
    entry: file(path, sha),
    origins: new Set(["n2"]),
  });
  const base = {
    now: 1_000,
    nodeId: "n1",
    maxTransfers: 2,
    busy: new Map<string, string>(),
    heldOff: new Map<string, { until: number }>(),
    firstSeen: new Map(),
    receivers: () => ["n1", "n2", "n3"],
  };
  const started = (r: ReturnType<typeof planTransfers>) => r.start.map((s) => s.key);

  test("within the transfer limit, counting those running", () => {
    const wants = [want("a", "a"), want("b", "b"), want("c", "c")];
    expect(started(planTransfers({ ...base, wants }))).toEqual(["games/a", "games/b"]);
    expect(started(planTransfers({ ...base, wants, busy: new Map([["games/x", "x".repeat(64)]]) }))).toEqual([
      "games/a",
    ]);
  });

  test("not a path or a content already being fetched, nor one held off until later", () => {
    const wants = [want("a", "a"), want("b", "a"), want("c", "c"), want("d", "d")];
    const r = planTransfers({
      ...base,
      maxTransfers: 9,
      wants,
      busy: new Map([["games/c", "z".repeat(64)]]),
      heldOff: new Map([["games/d", { until: 2_000 }]]),
    });
    expect(started(r)).toEqual(["games/a"]);
    expect(started(planTransfers({ ...base, now: 2_000, maxTransfers: 9, wants: [want("d", "d")] }))).toEqual([
      "games/d",
    ]);
  });

  test("a staggered receiver waits its delay from when it first saw the file, with the origins of then", () => {
    const staggered = { ...games, staggerMs: 60_000 };
    const w = (origins: string[]) => ({ ...want("a", "a", staggered), origins: new Set(origins) });
    // Eight receivers over 60 s: this node's place in the file's order puts it 30 s after the first sighting.
    const receivers = () => ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"];
    const first = planTransfers({ ...base, receivers, wants: [w(["n2"])] });
    expect(first.start).toEqual([]);
    expect(first.firstSeen.get(`games/a/${"a".repeat(64)}`)?.at).toBe(1_000);
    const early = planTransfers({ ...base, receivers, now: 30_999, wants: [w(["n2"])], firstSeen: first.firstSeen });
    expect(early.start).toEqual([]);
    const later = planTransfers({
      ...base,
      receivers,
      now: 31_000,
      wants: [w(["n2", "n3"])],
      firstSeen: first.firstSeen,
    });
    expect(later.start.map((s) => [...s.want.origins])).toEqual([["n2"]]);
    // A file no longer wanted is forgotten.
    expect(planTransfers({ ...base, wants: [], firstSeen: first.firstSeen }).firstSeen.size).toBe(0);
  });
});
