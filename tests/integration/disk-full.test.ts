import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { canMountSmallDisk, mountSmallDisk, SMALL_DISK_SKIP, type SmallDisk } from "../unit/small-disk.ts";
import { BIN, requireBinary, TestCluster, waitFor } from "./harness.ts";

/** Log lines of a node, parsed (the binary writes one JSON object per line). */
function logLines(cluster: TestCluster, id: string): Array<{ t: string; msg: string } & Record<string, unknown>> {
  const text = readFileSync(cluster.node(id).logFile, "utf8");
  return text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
}

/** When `id` first logged `msg` (ms since the epoch), or undefined. */
function firstLogged(cluster: TestCluster, id: string, msg: string, after = 0): number | undefined {
  const line = logLines(cluster, id).find((l) => l.msg === msg && Date.parse(l.t) >= after);
  return line ? Date.parse(line.t) : undefined;
}

/** How long each disk stays full, and how long writing goes on after: several periods of every timer. */
const FULL_FOR_MS = 6_000;

interface Ack {
  at: number;
  by: string;
}

/**
 * Writers that follow the leader: each writes its own keys in order, retries a key until it is
 * acknowledged (a key written twice holds the same value), and records who acknowledged it and when.
 */
class Writers {
  readonly acked = new Map<string, number>();
  readonly acks: Ack[] = [];
  readonly lastKey = new Map<number, string>();
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private guess: string;

  constructor(
    private readonly cluster: TestCluster,
    count: number,
  ) {
    this.guess = cluster.nodes[0]?.id as string;
    for (let w = 0; w < count; w++) this.loops.push(this.loop(w));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Acknowledgements at or after `since`. */
  ackedSince(since: number): Ack[] {
    return this.acks.filter((a) => a.at >= since);
  }

  private async loop(w: number): Promise<void> {
    for (let seq = 0; this.running; ) {
      const key = `w${w}-${seq}`;
      const target = this.guess;
      const res = await this.cluster.post(target, "/kv", { key, value: seq }).catch(() => null);
      const body = (await res?.json().catch(() => null)) as { leader?: { id: string } | null } | null;
      if (res?.status === 200) {
        this.acked.set(key, seq);
        this.lastKey.set(w, key);
        this.acks.push({ at: Date.now(), by: target });
        seq++;
        continue;
      }
      // A 421 names the leader when it knows one; otherwise (and after a 503 or no answer) try the next node.
      const hinted = res?.status === 421 ? body?.leader?.id : undefined;
      if (this.guess === target) this.guess = hinted ?? this.nextAfter(target);
      await Bun.sleep(10);
    }
  }

  private nextAfter(id: string): string {
    const ids = this.cluster.nodes.map((n) => n.id);
    return ids[(ids.indexOf(id) + 1) % ids.length] as string;
  }
}

if (!canMountSmallDisk) console.warn(`disk-full integration tests ${SMALL_DISK_SKIP}`);

const leaderOf = async (cluster: TestCluster, id: string) =>
  ((await cluster.get(id, "/election")) as { leader: { id: string } | null }).leader?.id;

describe.skipIf(!canMountSmallDisk)("3 voters, each on its own small tmpfs, with writers running", () => {
  let cluster: TestCluster;
  const disks = new Map<string, SmallDisk>();

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(3, { voters: 3 });
    for (const n of cluster.nodes) {
      const disk = mountSmallDisk(48);
      if (!disk) throw new Error("mount failed");
      disks.set(n.id, disk);
      cluster.start(n.id, { P2P_DATA_DIR: join(disk.dir, "data") });
    }
  });

  afterAll(async () => {
    await cluster?.stop();
    for (const disk of disks.values()) disk.unmount();
  });

  test(
    "filling and freeing a follower's disk, then the leader's: no process exits, writes resume within 2 s, nothing acknowledged is lost",
    async () =>
      cluster.withLogs(async () => {
        const disk = (id: string) => disks.get(id) as SmallDisk;
        const first = await waitFor(() => leaderOf(cluster, "n1"), 10_000, "a leader");
        await waitFor(() => cluster.converged(), 10_000, "every node alive to every other");
        const writers = new Writers(cluster, 8);
        await waitFor(() => writers.acks.length >= 300, 10_000, "writes acknowledged");

        // A follower's disk fills: the other two go on committing.
        const follower = cluster.nodes.map((n) => n.id).find((id) => id !== first) as string;
        const followerFullAt = Date.now();
        disk(follower).fill();
        const followerFailedAt = await waitFor(
          () => firstLogged(cluster, follower, "drain write failed; retrying with the next drain", followerFullAt),
          15_000,
          `${follower}'s log writes fail on its full disk`,
        );
        // Full for several periods of every timer that writes (peer rows every second, resource gossip, traces).
        await waitFor(
          () => writers.ackedSince(followerFailedAt).length >= 300 && Date.now() - followerFailedAt >= FULL_FOR_MS,
          FULL_FOR_MS + 10_000,
          "writes go on while a follower's disk is full",
        );
        disk(follower).free();
        await waitFor(
          () => firstLogged(cluster, follower, "drain writes succeed again", followerFailedAt),
          10_000,
          `${follower} writes again once space returns`,
        );

        // The leader's disk fills: it steps down, a new leader takes the writes.
        const leader = await waitFor(() => leaderOf(cluster, follower), 5_000, "the current leader");
        const leaderFullAt = Date.now();
        disk(leader).fill();
        const leaderFailedAt = await waitFor(
          () => firstLogged(cluster, leader, "drain write failed; retrying with the next drain", leaderFullAt),
          15_000,
          `the leader ${leader}'s log writes fail on its full disk`,
        );
        const resumed = await waitFor(
          () => writers.ackedSince(leaderFailedAt).find((a) => a.by !== leader),
          10_000,
          "a write acknowledged by a new leader",
        );
        const resumeMs = resumed.at - leaderFailedAt;
        console.log(
          `disk-full: writes resumed ${resumeMs} ms after the leader's first failed write ` +
            `(${resumed.at - leaderFullAt} ms after its disk was filled); new leader ${resumed.by}`,
        );
        expect(resumeMs).toBeLessThan(2_000);
        const stepDown = await waitFor(
          async () => ((await cluster.get(leader, "/election")) as { role: string }).role !== "leader" || undefined,
          1_000,
          `${leader} no longer leads`,
        );
        expect(stepDown).toBe(true);
        await waitFor(
          () => writers.ackedSince(resumed.at).length >= 300 && Date.now() - leaderFailedAt >= FULL_FOR_MS,
          FULL_FOR_MS + 10_000,
          "writes go on under the new leader",
        );
        disk(leader).free();
        await waitFor(
          () => firstLogged(cluster, leader, "drain writes succeed again", leaderFailedAt),
          10_000,
          `${leader} writes again once space returns`,
        );
        // The old binary died within seconds of space coming back: keep writing for longer than that.
        const freedAt = Date.now();
        await waitFor(
          () => writers.ackedSince(freedAt).length >= 300 && Date.now() - freedAt >= FULL_FOR_MS,
          FULL_FOR_MS + 10_000,
          "writes go on after both disks recover",
        );
        await writers.stop();

        // Nothing acknowledged is lost: every node holds every acknowledged write, and no process exited.
        for (const n of cluster.nodes) expect(n.proc?.exitCode).toBeNull();
        for (const n of cluster.nodes) {
          await waitFor(
            async () => {
              for (const key of writers.lastKey.values()) {
                const row = (await cluster.get(n.id, `/kv?key=${key}&consistency=local`)) as { value?: number };
                if (row.value !== writers.acked.get(key)) return false;
              }
              return true;
            },
            15_000,
            `${n.id} has applied every acknowledged write`,
          );
        }
        for (const n of cluster.nodes) {
          await cluster.kill(n.id, "SIGTERM");
          const db = new Database(join(disk(n.id).dir, "data", "state.db"), { readonly: true });
          try {
            expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
            const rows = db.query("SELECT key, value FROM kv WHERE key LIKE 'w%'").all() as Array<{
              key: string;
              value: string;
            }>;
            const held = new Map(rows.map((r) => [r.key, JSON.parse(r.value) as number]));
            const lost = [...writers.acked].filter(([key, value]) => held.get(key) !== value);
            expect(lost).toEqual([]);
          } finally {
            db.close();
          }
        }
        console.log(`disk-full: ${writers.acked.size} acknowledged writes, all on every node`);
      }),
    120_000,
  );
});

describe.skipIf(!canMountSmallDisk)("a worker whose data dir is full", () => {
  let cluster: TestCluster;
  let disk: SmallDisk | null = null;

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(4, {
      voters: 3,
      capabilities: (i) => (i === 3 ? ["selfplay"] : []),
      extraToml: `[jobs.selfplay]\ncommand = ["sleep", "0.2"]\ntimeout = "1m"\nslots = 1\n`,
    });
    disk = mountSmallDisk(16);
    if (!disk) throw new Error("mount failed");
    for (const n of cluster.nodes) cluster.start(n.id, n.id === "n4" ? { P2P_DATA_DIR: join(disk.dir, "data") } : {});
  });

  afterAll(async () => {
    await cluster?.stop();
    disk?.unmount();
  });

  test(
    "keeps running jobs and delivering their reports from memory, and writes its outbox again once space returns",
    async () =>
      cluster.withLogs(async () => {
        const voters = ["n1", "n2", "n3"];
        const leader = await waitFor(() => leaderOf(cluster, "n1"), 10_000, "a leader");
        await waitFor(() => cluster.converged(), 15_000, "all 4 alive");
        const submit = async (ids: string[]) => {
          const items = ids.map((id) => ({ id, type: "selfplay", config: {}, maxAttempts: 20 }));
          const res = await cluster.post(leader, "/work/batch", { items });
          return res.status === 200;
        };
        await waitFor(() => submit(["probe"]), 15_000, "the leader accepts selfplay work");
        const completed = async () => {
          const status = (await cluster.get(leader, "/work/status")) as { byState: Record<string, number> };
          return status.byState.completed ?? 0;
        };
        await waitFor(async () => (await completed()) === 1, 15_000, "the probe completed");

        const fullAt = Date.now();
        disk?.fill();
        expect(await submit(Array.from({ length: 30 }, (_, i) => `full-${i}`))).toBe(true);
        await waitFor(async () => (await completed()) === 31, 30_000, "30 items completed while n4's disk is full");
        expect(firstLogged(cluster, "n4", "work outbox write failed; retrying with backoff", fullAt)).toBeDefined();

        // Space returns; the next report written once the backoff is over says so.
        const freedAt = Date.now();
        disk?.free();
        let submitted = 31;
        await waitFor(
          async () => {
            if (firstLogged(cluster, "n4", "work outbox write succeeds again", freedAt)) return true;
            if ((await completed()) === submitted && (await submit([`freed-${submitted}`]))) submitted++;
            return false;
          },
          20_000,
          "n4 writes its outbox again",
        );
        await waitFor(async () => (await completed()) === submitted, 15_000, "every item completed");
        for (const n of cluster.nodes) expect(n.proc?.exitCode).toBeNull();
        const { history } = (await cluster.get(leader, "/work/history?limit=10000")) as {
          history: Array<{ itemId: string; to: string }>;
        };
        const completions = history.filter((h) => h.to === "completed").map((h) => h.itemId);
        expect(completions.length).toBe(submitted);
        expect(new Set(completions).size).toBe(submitted);
        expect(voters).toContain(leader);
      }),
    90_000,
  );
});

describe.skipIf(!canMountSmallDisk)("starting on a data dir the node cannot use", () => {
  let cluster: TestCluster;
  const disks: SmallDisk[] = [];

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(1, { voters: 1 });
  });

  afterAll(async () => {
    await cluster?.stop();
    for (const disk of disks) disk.unmount();
  });

  const start = (dataDir: string) =>
    Bun.spawnSync([BIN, "start", "--config", cluster.configPath, "--node", "n1", "--data-dir", dataDir], {
      stdout: "pipe",
      stderr: "pipe",
    });

  test("a read-only data dir: exit code 2 and one line naming the directory", () => {
    const disk = mountSmallDisk(1, { readOnly: true });
    if (!disk) throw new Error("mount failed");
    disks.push(disk);
    for (const dataDir of [disk.dir, join(disk.dir, "state")]) {
      const run = start(dataDir);
      expect(run.exitCode).toBe(2);
      const stderr = run.stderr.toString().trim();
      expect(stderr.split("\n")).toEqual([expect.stringContaining(`data dir ${dataDir}`)]);
      expect(stderr).toContain("read-only file system");
    }
  });

  test("a full disk: exit code 2, one line, and no half-created files; an existing database is kept", () => {
    const disk = mountSmallDisk(4);
    if (!disk) throw new Error("mount failed");
    disks.push(disk);
    disk.fill();
    const fresh = join(disk.dir, "fresh");
    const run = start(fresh);
    expect(run.exitCode).toBe(2);
    expect(run.stderr.toString().trim().split("\n")).toEqual([expect.stringContaining(`data dir ${fresh}`)]);
    expect(run.stderr.toString()).toContain("disk is full");
    expect(existsSync(fresh)).toBe(false);

    // A node that ran here before: its database stays, whatever the refusal.
    disk.free();
    const used = join(disk.dir, "used");
    mkdirSync(used);
    const node = Bun.spawn([BIN, "start", "--config", cluster.configPath, "--node", "n1", "--data-dir", used], {
      stdout: "ignore",
      stderr: "ignore",
    });
    return waitFor(() => existsSync(join(used, "state.db")), 10_000, "the node creates its database")
      .then(async () => {
        node.kill("SIGTERM");
        await node.exited;
        disk.fill();
        const again = start(used);
        expect(again.exitCode).toBe(2);
        expect(again.stderr.toString()).toContain(`data dir ${used}`);
        expect(readdirSync(used)).toContain("state.db");
      })
      .finally(() => node.kill("SIGKILL"));
  }, 20_000);
});
