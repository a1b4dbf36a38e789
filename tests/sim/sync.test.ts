import { describe, expect, test } from "bun:test";
import type { DataCategory } from "../../src/config/load.ts";
import type { FileEntry, Manifest, Retired } from "../../src/sync/model.ts";
import { type FirstSeen, planTransfers, wantedFiles } from "../../src/sync/plan.ts";
import { holdsCategory, receiverOrder } from "../../src/sync/policy.ts";
import { isRetired } from "../../src/sync/retired.ts";
import { seededRandom } from "./rng.ts";

/**
 * Data sync's decisions (what to fetch from whom, what starts now) in a seeded world of nodes that publish files,
 * die and come back, lose transfers, and retire old epochs as a run's retention would. Checked after every step: no
 * node fetches a category it does not hold, a retired file, the same content twice at once, or more than its
 * limit; at the end, with every node up and no new files, every holder has every file that is not retired.
 * `SYNC_SEED=<n>` replays one seed.
 */

const STEP_MS = 50;
const MAX_TRANSFERS = 3;
const categories: DataCategory[] = [
  { name: "models", root: "", globs: ["**"], to: "all", swarm: true, staggerMs: 200 },
  { name: "games", root: "", globs: ["**"], to: ["train"], swarm: false, staggerMs: 0 },
];

interface Transfer {
  category: string;
  entry: FileEntry;
  from: string;
  doneAt: number;
}

interface SimNode {
  id: string;
  capabilities: string[];
  alive: boolean;
  files: Map<string, Map<string, FileEntry>>;
  transfers: Map<string, Transfer>;
  heldOff: Map<string, { until: number }>;
  firstSeen: FirstSeen;
  /** The retention rules as this node knows them: it learns a new cutoff a while after it is decided. */
  rules: Retired[];
}

function world(seed: number): { violations: string[]; missing: string[]; fetched: number } {
  const random = seededRandom(seed);
  const count = 3 + Math.floor(random() * 4);
  const nodes: SimNode[] = Array.from({ length: count }, (_, i) => ({
    id: `n${i + 1}`,
    capabilities: i === 0 || random() < 0.4 ? ["train"] : [],
    alive: true,
    files: new Map(categories.map((c) => [c.name, new Map()])),
    transfers: new Map(),
    heldOff: new Map(),
    firstSeen: new Map(),
    rules: [],
  }));
  let rules: Retired[] = [];
  const violations: string[] = [];
  let fetched = 0;
  let seq = 0;
  const manifest = (n: SimNode, category: string): Manifest => ({
    node: n.id,
    category,
    digest: "",
    files: [...(n.files.get(category)?.values() ?? [])],
    retired: n.rules,
  });
  const holders = (c: DataCategory) => nodes.filter((n) => holdsCategory(c, n.capabilities)).map((n) => n.id);

  const step = (now: number, churn: boolean) => {
    // A node publishes a file now and then: a model (to all) or games of the current epoch (to trainers).
    if (churn && random() < 0.15) {
      const n = nodes[Math.floor(random() * count)] as SimNode;
      if (n.alive) {
        const isModel = random() < 0.3;
        const epoch = Math.floor(now / 2_000);
        const path = isModel
          ? `c4/${String(epoch).padStart(4, "0")}-m${seq}.model`
          : `c4/${String(epoch).padStart(6, "0")}/g${seq}.jsonl`;
        // Now and then the same content under a second name: it must not be fetched twice at once.
        const again = seq > 0 && random() < 0.1;
        const sha = (again ? Math.floor(random() * seq) : seq).toString(16).padStart(64, "0");
        seq++;
        n.files.get(isModel ? "models" : "games")?.set(path, { path, size: 1, mtimeMs: now, sha256: sha });
      }
    }
    // Retention moves on: epochs more than 3 back are retired. Each node learns the rule a while later, and then
    // deletes what it retires; until then it still serves those files.
    const cutoff = Math.max(0, Math.floor(now / 2_000) - 3);
    if (churn) rules = cutoff > 0 ? [{ under: "c4", below: cutoff, except: [] }] : [];
    for (const n of nodes) {
      if (random() < 0.1) n.rules = rules;
      for (const files of n.files.values()) {
        for (const [p, f] of files) if (isRetired(p, f.sha256, n.rules)) files.delete(p);
      }
    }
    // Nodes die and come back (a dead node keeps its files; its transfers are lost).
    if (churn && random() < 0.02) {
      const n = nodes[Math.floor(random() * count)] as SimNode;
      n.alive = !n.alive;
      if (!n.alive) n.transfers.clear();
    }
    const alive = new Set(nodes.filter((n) => n.alive).map((n) => n.id));
    for (const n of nodes) {
      if (!n.alive) continue;
      // Transfers that end now: done if the source is still up and still has that content, else held off.
      for (const [key, t] of n.transfers) {
        if (t.doneAt > now) continue;
        n.transfers.delete(key);
        const source = nodes.find((x) => x.id === t.from);
        const held = source?.alive && source.files.get(t.category)?.get(t.entry.path)?.sha256 === t.entry.sha256;
        if (held && random() > 0.05) {
          n.files.get(t.category)?.set(t.entry.path, t.entry);
          fetched++;
        } else n.heldOff.set(key, { until: now + 500 });
      }
      const remote = new Map<string, Manifest>();
      for (const peer of nodes) {
        if (peer === n) continue;
        for (const c of categories) remote.set(`${peer.id}/${c.name}`, manifest(peer, c.name));
      }
      const wants = wantedFiles({
        categories,
        capabilities: n.capabilities,
        local: (c) => [...(n.files.get(c)?.values() ?? [])],
        remote,
        alive,
        rules: () => n.rules,
      });
      const busy = new Map([...n.transfers].map(([k, t]) => [k, t.entry.sha256] as const));
      const plan = planTransfers({
        now,
        nodeId: n.id,
        wants,
        maxTransfers: MAX_TRANSFERS,
        busy,
        heldOff: n.heldOff,
        firstSeen: n.firstSeen,
        receivers: (c) => receiverOrder("", holders(c)),
      });
      n.firstSeen = plan.firstSeen;
      for (const { key, want } of plan.start) {
        const category = categories.find((c) => c.name === want.category.name) as DataCategory;
        if (!holdsCategory(category, n.capabilities))
          violations.push(`${n.id} fetches ${key} of a category it does not hold`);
        if (isRetired(want.entry.path, want.entry.sha256, n.rules)) violations.push(`${n.id} fetches retired ${key}`);
        if ([...n.transfers.values()].some((t) => t.entry.sha256 === want.entry.sha256)) {
          violations.push(`${n.id} fetches ${want.entry.sha256.slice(-6)} twice at once`);
        }
        const from = [...want.origins].find((o) => alive.has(o)) ?? [...want.origins][0];
        if (from === undefined) violations.push(`${n.id} plans ${key} with no holder`);
        n.transfers.set(key, {
          category: category.name,
          entry: want.entry,
          from: from ?? "",
          doneAt: now + 50 + random() * 400,
        });
      }
      if (n.transfers.size > MAX_TRANSFERS) violations.push(`${n.id} runs ${n.transfers.size} transfers`);
    }
  };

  let now = 0;
  for (; now < 20_000; now += STEP_MS) step(now, true);
  for (const n of nodes) n.alive = true;
  // Quiet: no new files, everyone up and knowing the last cutoff, retention frozen there; sync must converge.
  for (const n of nodes) n.rules = rules;
  for (let quiet = 0; quiet < 200; quiet++, now += STEP_MS) step(now, false);
  const missing: string[] = [];
  for (const c of categories) {
    const everything = new Map<string, string>();
    for (const n of nodes) for (const f of n.files.get(c.name)?.values() ?? []) everything.set(f.path, f.sha256);
    for (const n of nodes) {
      if (!holdsCategory(c, n.capabilities)) continue;
      for (const [path, sha] of everything) {
        if (!isRetired(path, sha, rules) && n.files.get(c.name)?.get(path)?.sha256 !== sha) {
          missing.push(`${n.id} lacks ${c.name}/${path}`);
        }
      }
    }
  }
  return { violations, missing, fetched };
}

describe("data sync's decisions in a seeded world", () => {
  const only = process.env.SYNC_SEED;
  const seeds = only ? [Number(only)] : Array.from({ length: 100 }, (_, i) => i + 1);

  test(`never a category not held, a retired file or the same content twice; every holder converges (${seeds.length} seeds)`, () => {
    let fetched = 0;
    for (const seed of seeds) {
      const r = world(seed);
      if (r.violations.length > 0 || r.missing.length > 0) {
        throw new Error(`seed ${seed} (SYNC_SEED=${seed}): ${[...r.violations, ...r.missing].slice(0, 5).join("; ")}`);
      }
      fetched += r.fetched;
    }
    expect(fetched).toBeGreaterThan(seeds.length * 10);
  });
});
