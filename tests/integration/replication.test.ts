import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { requireBinary, TestCluster, waitFor } from "./harness.ts";

interface Election {
  role: string;
  leader: { id: string } | null;
  snapshotIndex: number;
}

/** The leader as `id` reports it, once there is one. */
const leaderSeenBy = (cluster: TestCluster, id: string) =>
  waitFor(async () => ((await cluster.get(id, "/election")) as Election).leader?.id, 10_000, `a leader seen by ${id}`);

/** A voter that was down while the leader compacted its log is caught up by a snapshot of the state. */
describe("snapshot catch-up among 3 compiled voters", () => {
  let cluster: TestCluster;

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(3, { voters: 3 });
    cluster.startAll();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test(
    "a restarted voter behind the compacted log installs a snapshot and reads the latest state",
    async () =>
      cluster.withLogs(async () => {
        const leader = await leaderSeenBy(cluster, "n1");
        const follower = cluster.nodes.map((n) => n.id).find((id) => id !== leader) as string;
        await cluster.kill(follower);
        const writes = 10_500;
        let next = 0;
        const worker = async () => {
          while (next < writes) {
            const i = next++;
            const res = await cluster.post(leader, "/kv", { key: `k${i % 10}`, value: i });
            if (res.status !== 200) throw new Error(`write ${i}: ${res.status} ${await res.text()}`);
          }
        };
        await Promise.all(Array.from({ length: 32 }, worker));
        const final = await cluster.post(leader, "/kv", { key: "last", value: writes });
        expect(final.status).toBe(200);
        const leaderView = (await cluster.get(leader, "/election")) as Election;
        expect(leaderView.snapshotIndex).toBeGreaterThan(0);

        cluster.start(follower);
        const value = await waitFor(
          async () => {
            const row = (await cluster.get(follower, "/kv?key=last&consistency=local").catch(() => null)) as {
              value?: number;
            } | null;
            return row?.value;
          },
          20_000,
          "the restarted follower has the latest write",
        );
        expect(value).toBe(writes);
        const followerView = (await cluster.get(follower, "/election")) as Election;
        expect(followerView.snapshotIndex).toBeGreaterThan(0);
        const k9 = (await cluster.get(follower, "/kv?key=k9&consistency=local")) as { value: number };
        expect(k9.value).toBe(writes - 1);
      }),
    60_000,
  );
});

/** A rented voter is replaced without downtime: a fourth node joins the voters, then one old voter leaves. */
describe("voter replacement among compiled nodes", () => {
  let cluster: TestCluster;

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(4, { voters: 3 });
    cluster.startAll();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test(
    "add n4 as a voter, remove a follower, and keep committing",
    async () =>
      cluster.withLogs(async () => {
        const leader = await leaderSeenBy(cluster, "n1");
        expect(((await cluster.get("n4", "/election")) as Election).role).toBe("non-voter");
        // A leader refuses voter changes until it has committed an entry of its own term (a 422 saying so).
        const added = await waitFor(
          async () => {
            const answer = await cluster.post(leader, "/admin/voters", {
              action: "add",
              id: "n4",
              address: cluster.node("n4").address,
            });
            const body = (await answer.json()) as { message?: string };
            return body.message?.includes("has not committed its first entry") ? undefined : answer;
          },
          10_000,
          "the leader takes voter changes",
        );
        expect(added.status).toBe(200);
        await waitFor(
          async () => ((await cluster.get("n4", "/election")) as Election).role === "follower",
          10_000,
          "n4 follows as a voter",
        );
        const outgoing = ["n1", "n2", "n3"].find((id) => id !== leader) as string;
        const removed = await cluster.post(leader, "/admin/voters", { action: "remove", id: outgoing });
        expect(removed.status).toBe(200);
        const body = (await removed.json()) as { voters: { id: string }[] };
        expect(body.voters.map((v) => v.id).sort()).toEqual(["n1", "n2", "n3", "n4"].filter((id) => id !== outgoing));
        await cluster.kill(outgoing);
        const write = await cluster.post(leader, "/kv", { key: "after-replacement", value: true });
        expect(write.status).toBe(200);
        const row = await waitFor(
          async () =>
            (
              (await cluster.get("n4", "/kv?key=after-replacement&consistency=local").catch(() => null)) as {
                value?: boolean;
              } | null
            )?.value,
          5_000,
          "n4 applies the write",
        );
        expect(row).toBe(true);
      }),
    60_000,
  );
});
