import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { StoredTrace } from "../../src/db/traces.ts";
import { requireBinary, TestCluster, waitFor } from "./harness.ts";

/** The compiled binary as 5 nodes on 127.0.0.x: convergence, crash, restart, a 2 s stall, a graceful leave. */
describe("membership of 5 compiled nodes", () => {
  let cluster: TestCluster;

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(5);
    cluster.startAll();
  });

  afterAll(async () => {
    if (cluster) await cluster.stop();
  });

  const withLogs = (body: () => Promise<void>) => cluster.withLogs(body);

  test(
    "all converge to 5 alive",
    () =>
      withLogs(async () => {
        await waitFor(() => cluster.converged(), 15_000, "every node sees the other 4 alive");
        const s = await cluster.status("n1");
        expect(s.node.id).toBe("n1");
        expect(s.peers.map((p) => p.id).sort()).toEqual(["n2", "n3", "n4", "n5"]);
        const n2 = s.peers.find((p) => p.id === "n2");
        await waitFor(
          async () => (await cluster.status("n1")).peers.find((p) => p.id === "n2")?.resources,
          5_000,
          "n2's resources gossiped to n1",
        );
        expect(n2?.incarnation).toBe(1);
      }),
    30_000,
  );

  test(
    "kill -9 one node: every survivor marks it dead",
    () =>
      withLogs(async () => {
        await cluster.kill("n4");
        await waitFor(() => cluster.allSee("n4", "dead"), 20_000, "n4 dead on every survivor");
        const why = (await cluster.get("n1", "/traces?machine=peer&instance=n4")) as { traces: StoredTrace[] };
        expect(why.traces.map((t) => t.to)).toContain("dead");
      }),
    30_000,
  );

  test(
    "restart it: alive again everywhere, with a higher incarnation",
    () =>
      withLogs(async () => {
        cluster.start("n4");
        await waitFor(() => cluster.converged(), 15_000, "n4 alive everywhere again");
        const view = (await cluster.status("n2")).peers.find((p) => p.id === "n4");
        expect(view?.incarnation).toBeGreaterThan(1);
      }),
    30_000,
  );

  test(
    "SIGSTOP one node for 2 s: nobody marks it dead",
    () =>
      withLogs(async () => {
        await waitFor(() => cluster.converged(), 15_000, "converged before the stall");
        const pausedAt = Date.now();
        cluster.signal("n3", "SIGSTOP");
        await Bun.sleep(2_000); // the fault itself: a 2 s stall, not a synchronisation wait
        cluster.signal("n3", "SIGCONT");
        await waitFor(() => cluster.converged(), 15_000, "n3 alive everywhere after it resumes");
        for (const observer of ["n1", "n2", "n4", "n5"]) {
          const { traces } = (await cluster.get(observer, `/traces?machine=peer&instance=n3&since=${pausedAt}`)) as {
            traces: StoredTrace[];
          };
          expect(traces.filter((t) => t.to === "dead")).toEqual([]);
        }
      }),
    40_000,
  );

  test(
    "a graceful leave (SIGTERM) is seen as left, and the process exits 0",
    () =>
      withLogs(async () => {
        const n5 = cluster.node("n5").proc;
        cluster.signal("n5", "SIGTERM");
        expect(await n5?.exited).toBe(0);
        cluster.node("n5").proc = null;
        await waitFor(() => cluster.allSee("n5", "left"), 5_000, "n5 left on every node");
      }),
    20_000,
  );
});
