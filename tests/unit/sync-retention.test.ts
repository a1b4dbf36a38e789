import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DataCategory } from "../../src/config/load.ts";
import { type Db, openDb } from "../../src/db/client.ts";
import { Hasher } from "../../src/sync/hasher.ts";
import type { Retired } from "../../src/sync/model.ts";
import { isRetired, mergeRetired } from "../../src/sync/retired.ts";
import type { SyncService } from "../../src/sync/service.ts";
import { loneSync } from "./lone-sync.ts";

const sha = (c: string) => c.repeat(64);

describe("retention rules", () => {
  const rule: Retired = { under: "c4", below: 3, except: [sha("a")] };

  test("an entry numbered below the rule's cutoff in its folder is retired, unless its content is excepted", () => {
    expect(isRetired("c4/000002/games-x.jsonl", sha("b"), [rule])).toBe(true);
    expect(isRetired("c4/0001-bbbb.model", sha("b"), [rule])).toBe(true);
    expect(isRetired("c4/0001-aaaa.model", sha("a"), [rule])).toBe(false);
    expect(isRetired("c4/000003/games-x.jsonl", sha("b"), [rule])).toBe(false);
    // Names without a number, other runs' folders and files at the root are never retired.
    expect(isRetired("c4/games-x.jsonl", sha("b"), [rule])).toBe(false);
    expect(isRetired("c5/000001/games-x.jsonl", sha("b"), [rule])).toBe(false);
    expect(isRetired("000001", sha("b"), [rule])).toBe(false);
  });

  test("merging: the furthest cutoff wins; at one cutoff a file any node excepts stays; oversized rules are dropped", () => {
    const later = { under: "c4", below: 5, except: [] };
    expect(mergeRetired([[rule], [later]])).toEqual([later]);
    const lagging = { under: "c4", below: 3, except: [sha("c")] };
    expect(mergeRetired([[rule], [lagging]])).toEqual([{ under: "c4", below: 3, except: [sha("a"), sha("c")] }]);
    const huge = {
      under: "c4",
      below: 9,
      except: Array.from({ length: 257 }, (_, i) => i.toString(16).padStart(64, "0")),
    };
    expect(mergeRetired([[rule], [huge]])).toEqual([]);
    expect(mergeRetired([[{ under: "c4", below: 0, except: [] }]])).toEqual([]);
  });
});

describe("a node applies the rules", () => {
  let dir: string;
  let db: Db;
  let hasher: Hasher;
  let sync: SyncService;
  let rules: Retired[] = [];
  const category: DataCategory = { name: "games", root: "", globs: ["**"], to: "all", swarm: false, staggerMs: 0 };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "p2p-retention-"));
    db = openDb(join(dir, "state"));
    hasher = new Hasher();
    rules = [];
    const categories = [{ ...category, root: join(dir, "games") }];
    sync = loneSync({ db, hasher, categories, settleMs: 0, extra: { retired: () => rules } });
  });

  afterEach(() => {
    sync.stop();
    hasher.close();
    db.$client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("retired epochs are deleted, kept ones stay; the manifest carries the rule and its digest changes", async () => {
    for (const epoch of ["000000", "000001", "000002"]) {
      mkdirSync(join(dir, "games", "c4", epoch), { recursive: true });
      writeFileSync(join(dir, "games", "c4", epoch, "games.jsonl"), `${epoch}\n`);
    }
    await sync.now();
    expect(sync.manifest("games")?.files).toHaveLength(3);
    const before = sync.gossip().digests.games?.digest;
    rules = [{ under: "c4", below: 2, except: [] }];
    await sync.now();
    const deadline = Date.now() + 10_000;
    while (sync.manifest("games")?.files.length !== 1 && Date.now() < deadline) await Bun.sleep(10);
    expect(sync.manifest("games")?.files.map((f) => f.path)).toEqual(["c4/000002/games.jsonl"]);
    expect(existsSync(join(dir, "games", "c4", "000000", "games.jsonl"))).toBe(false);
    expect(sync.manifest("games")?.retired).toEqual(rules);
    expect(sync.gossip().digests.games?.digest).not.toBe(before);
    expect(sync.gossip().digests.games?.digest).toBe(sync.manifest("games")?.digest as string);
  });
});
