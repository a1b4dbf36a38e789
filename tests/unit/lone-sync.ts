import type { DataCategory } from "../../src/config/load.ts";
import { deriveTiming } from "../../src/config/timing.ts";
import type { Db } from "../../src/db/client.ts";
import { httpTransport } from "../../src/net/peer-transport.ts";
import { createLogger } from "../../src/observability/log.ts";
import type { Hasher } from "../../src/sync/hasher.ts";
import { ManifestIndex } from "../../src/sync/manifest.ts";
import { SyncService, type SyncServiceOptions } from "../../src/sync/service.ts";

/**
 * The data sync of one node with no peers ("n1"), over real folders and its own index, for tests of what a node
 * does alone: publishing, rescans, retention. A scan period far longer than any test: only the scans a test
 * causes can find its files in time.
 */
export function loneSync(opts: {
  db: Db;
  hasher: Hasher;
  categories: DataCategory[];
  settleMs: number;
  extra?: Partial<SyncServiceOptions>;
}): SyncService {
  const { db, hasher, categories } = opts;
  return new SyncService({
    nodeId: "n1",
    capabilities: [],
    categories,
    limits: {
      maxTransfers: 1,
      maxUploads: 1,
      downloadRate: 0,
      uploadRate: 0,
      diskMaxPercent: 100,
      scanIntervalMs: 600_000,
    },
    timing: deriveTiming("lan"),
    transport: httpTransport({ nodeId: "n1", secret: "s".repeat(64) }),
    index: new ManifestIndex({ db, nodeId: "n1", categories, hasher, settleMs: opts.settleMs }),
    pieceHasher: hasher,
    log: createLogger("error"),
    trace: () => {},
    peers: () => [],
    onGossipChange: () => {},
    ...opts.extra,
  });
}
