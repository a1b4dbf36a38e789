import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import * as v from "valibot";
import { deriveTiming } from "../../src/config/timing.ts";
import { ConsensusRuntime, NotLeaderError, WriteFailedError } from "../../src/consensus/runtime.ts";
import { defineCommand } from "../../src/consensus/state-machine.ts";
import { type Db, openDb } from "../../src/db/client.ts";
import { loadPeers, readMeta } from "../../src/db/peers.ts";
import { TraceStore } from "../../src/db/traces.ts";
import { INCARNATION_KEY, MembershipRuntime } from "../../src/membership/runtime.ts";
import { Membership } from "../../src/membership/swim.ts";
import { httpTransport } from "../../src/net/peer-transport.ts";
import { createLogger } from "../../src/observability/log.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { waitFor } from "../integration/harness.ts";
import { canMountSmallDisk, mountSmallDisk, SMALL_DISK_SKIP, type SmallDisk } from "./small-disk.ts";

const timing = deriveTiming("lan");
const SECRET = "s".repeat(32);

/** Carries its payload into the log: a large one needs new pages that a full disk cannot give. */
const blob = defineCommand({
  name: "test.blob",
  payload: v.object({ text: v.string() }),
  tables: [],
  apply: (_db, payload) => payload.text.length,
});
const bigBlob = (tag: string) => ({ name: "test.blob", payload: { text: tag.repeat(200_000 / tag.length) } });

/** Log lines, as parsed objects. */
function capturingLogger() {
  const lines: Array<{ level: string; msg: string } & Record<string, unknown>> = [];
  const log = createLogger("info", {}, (line) => {
    lines.push(JSON.parse(line));
    return true;
  });
  return { log, lines };
}

let disk: SmallDisk | null = null;
let db: Db | null = null;
const stops: Array<() => void> = [];

beforeAll(() => {
  if (!canMountSmallDisk) console.warn(`disk-full unit tests ${SMALL_DISK_SKIP}`);
});

afterEach(() => {
  try {
    for (const stop of stops.splice(0)) stop();
  } finally {
    db?.$client.close();
    db = null;
    disk?.unmount();
    disk = null;
  }
});

function smallDiskDb(): Db {
  disk = mountSmallDisk(4);
  if (!disk) throw new Error("mount failed");
  db = openDb(join(disk.dir, "data"));
  return db;
}

describe("a full disk under a real SQLite (a small tmpfs)", () => {
  test.skipIf(!canMountSmallDisk)(
    "a leader whose log write fails steps down at once, stays out of elections while it cannot write, and leads again when space returns",
    async () => {
      const state = smallDiskDb();
      const { log, lines } = capturingLogger();
      const runtime = new ConsensusRuntime({
        nodeId: "n1",
        voters: new Map([["n1", "127.0.0.1:1"]]),
        timing,
        secret: SECRET,
        db: state,
        traces: new TraceStore(state, { log }),
        log,
        metrics: new Metrics(),
        commands: [blob],
      });
      runtime.start();
      stops.push(() => runtime.stop());
      await waitFor(() => runtime.raft.holdsLease(), 10_000, "the single voter leads");
      expect((await runtime.propose(bigBlob("a"))).result).toBe(200_000);

      disk?.fill();
      const failed = await runtime.propose(bigBlob("b")).catch((e: Error) => e);
      expect(failed).toBeInstanceOf(WriteFailedError);
      expect((failed as Error).message).toContain("database or disk is full");
      // At once: no lease held over a log it cannot write.
      expect(runtime.raft.currentRole).toBe("follower");
      expect(runtime.raft.holdsLease()).toBe(false);
      expect(await runtime.propose(bigBlob("c")).catch((e: Error) => e)).toBeInstanceOf(NotLeaderError);
      // Several election timeouts of a full disk: it does not campaign (it could not persist its vote).
      await Bun.sleep(timing.electionMaxMs * 3);
      expect(runtime.raft.currentRole).toBe("follower");
      const term = runtime.raft.currentTerm;

      disk?.free();
      await waitFor(() => runtime.raft.holdsLease(), 10_000, "the voter leads again once its writes succeed");
      expect(runtime.raft.currentTerm).toBe(term + 1);
      expect((await runtime.propose(bigBlob("d"))).result).toBe(200_000);
      const errors = lines.filter((l) => l.msg.startsWith("drain write failed"));
      expect(errors.length).toBe(1);
      expect(lines.some((l) => l.msg === "drain writes succeed again")).toBe(true);
      expect(state.$client.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    },
    30_000,
  );

  test.skipIf(!canMountSmallDisk)(
    "membership timers survive: peer rows, the incarnation and trace rows wait in memory, logged once, and are written when space returns",
    async () => {
      const state = smallDiskDb();
      const { log, lines } = capturingLogger();
      const traces = new TraceStore(state, { log });
      const core = new Membership({
        self: { id: "n1", address: "127.0.0.1:1" },
        cluster: "test",
        incarnation: 1,
        timing,
        seeds: [],
        now: Date.now(),
        random: Math.random,
      });
      const membership = new MembershipRuntime({
        core,
        db: state,
        traces,
        log,
        metrics: new Metrics(),
        timing,
        transport: httpTransport({ nodeId: "n1", secret: SECRET }),
      });
      membership.start();
      stops.push(() => membership.stop());

      disk?.fill();
      // A peer appears and suspects us: a peer row to save, a refutation (a new incarnation) and trace rows.
      membership.receive([
        {
          type: "gossip",
          from: "n2",
          updates: [
            { kind: "alive", id: "n2", address: "127.0.0.1:2", incarnation: 1 },
            { kind: "suspect", id: "n1", incarnation: 1, by: "n2" },
          ],
        },
      ]);
      expect(core.currentIncarnation).toBe(2);
      await waitFor(
        () => lines.some((l) => l.msg === "trace flush failed; retrying with backoff"),
        5_000,
        "a trace flush on the full disk",
      );
      // The disk stays full across several persist and flush periods; every timer keeps running.
      await Bun.sleep(2_500);
      expect(loadPeers(state).map((p) => p.id)).not.toContain("n2");

      disk?.free();
      await waitFor(() => loadPeers(state).some((p) => p.id === "n2"), 10_000, "the peer row is written");
      expect(readMeta(state, INCARNATION_KEY)).toBe("2");
      await waitFor(() => traces.query({ machine: "peer" }).length > 0, 10_000, "the kept trace rows are written");
      for (const what of ["peer state write", "trace flush"]) {
        expect(lines.filter((l) => l.msg === `${what} failed; retrying with backoff`).length).toBe(1);
        const recovered = lines.filter((l) => l.msg === `${what} succeeds again`);
        expect(recovered.length).toBe(1);
        expect(recovered[0]?.failedAttempts as number).toBeGreaterThan(1);
      }
      expect(state.$client.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    },
    30_000,
  );
});
