import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DataCategory } from "../../src/config/load.ts";
import { type Db, openDb } from "../../src/db/client.ts";
import { Hasher } from "../../src/sync/hasher.ts";
import type { SyncService } from "../../src/sync/service.ts";
import { loneSync } from "./lone-sync.ts";

/**
 * A file a stage has just published (a fresh model) reaches the node's gossip within about the settle time, not a
 * scan period later: a scan that skipped it as too fresh looks again once it has settled, and a rescan asked for
 * while another runs follows that one.
 */

let dir: string;
let db: Db;
let hasher: Hasher;
let sync: SyncService;
let gossips = 0;
const category: DataCategory = {
  name: "models",
  root: "",
  globs: ["**/*.model"],
  to: "all",
  swarm: true,
  staggerMs: 0,
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "p2p-publish-"));
  db = openDb(join(dir, "state"));
  hasher = new Hasher();
  const categories = [{ ...category, root: join(dir, "models") }];
  mkdirSync(join(dir, "models", "c4"), { recursive: true });
  sync = loneSync({
    db,
    hasher,
    categories,
    settleMs: 300,
    extra: {
      onGossipChange: () => {
        gossips++;
      },
    },
  });
});

afterEach(() => {
  sync.stop();
  hasher.close();
  db.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

const files = () => sync.gossip().digests.models?.files ?? 0;

async function until(check: () => boolean, ms: number): Promise<number> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await Bun.sleep(10);
  }
  return performance.now() - started;
}

describe("publishing a file into a data category", () => {
  test("a file too fresh for the scan that was asked for is indexed once it settles", async () => {
    await sync.now("models");
    writeFileSync(join(dir, "models", "c4", "0001-abc.model"), "weights");
    await sync.now("models");
    expect(files()).toBe(0); // fresh: left for later
    const waited = await until(() => files() === 1, 2_000);
    expect(waited).toBeLessThan(1_000);
    expect(gossips).toBeGreaterThan(0);
    // The node now knows itself a holder of that model (the registry shows holders from this view).
    const sha = new Bun.CryptoHasher("sha256").update("weights").digest("hex");
    expect(sync.holders(sha)).toEqual(["n1"]);
    expect(sync.holders("0".repeat(64))).toEqual([]);
  });

  test("a rescan asked for while one runs is not swallowed by it", async () => {
    const first = sync.now("models");
    writeFileSync(join(dir, "models", "c4", "0002-def.model"), "weights");
    const second = sync.now("models");
    await Promise.all([first, second]);
    await until(() => files() === 1, 2_000);
  });
});
