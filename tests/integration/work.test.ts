import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { BIN, requireBinary, TestCluster, waitFor } from "./harness.ts";

interface Election {
  leader: { id: string; address: string } | null;
}

interface HistoryRow {
  itemId: string;
  from: string | null;
  to: string;
  cause: string | null;
}

const ITEMS = 200;

/**
 * 3 voters and 2 workers run 200 items of a real command; the leader and one worker are killed in the
 * middle. Every item ends completed, exactly once, and the history shows the ones that were taken back.
 */
describe("work queue with real jobs through a leader and a worker crash", () => {
  let cluster: TestCluster;

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(5, {
      voters: 3,
      capabilities: (i) => (i >= 3 ? ["selfplay"] : []),
      extraToml: `[jobs.selfplay]\ncommand = ["sh", "-c", 'sleep 0.2; echo "{\\"n\\": $P2P_PARAM_N}"']\ntimeout = "1m"\nslots = 2\n`,
    });
    cluster.startAll();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  const leaderOf = (among: string[]) =>
    waitFor(
      async () => {
        for (const id of among) {
          const e = (await cluster.get(id, "/election").catch(() => null)) as Election | null;
          if (e?.leader && among.includes(e.leader.id)) return e.leader.id;
        }
        return undefined;
      },
      15_000,
      "a leader",
    );

  const completed = async (among: string[]) => {
    const leader = await leaderOf(among);
    const status = (await cluster.get(leader, "/work/status")) as { byState: Record<string, number> };
    return status.byState.completed ?? 0;
  };

  test(
    "200 items end completed exactly once despite kill -9 of the leader and a worker",
    async () =>
      cluster.withLogs(async () => {
        const voters = ["n1", "n2", "n3"];
        const leader = await leaderOf(voters);
        // Workers must be known (gossip) before their type counts as runnable.
        await waitFor(() => cluster.converged(), 15_000, "all 5 alive");
        await waitFor(
          async () =>
            (await cluster.post(leader, "/work", { id: "probe", type: "selfplay", config: { n: -1 } })).status === 200,
          15_000,
          "the leader accepts selfplay work",
        );
        // The CLI pointed at a follower follows its 421 to the leader.
        const follower = voters.find((id) => id !== leader) as string;
        const cli = Bun.spawnSync([
          BIN,
          "work",
          "add",
          "--url",
          `http://${cluster.node(follower).address}`,
          "--token",
          cluster.token,
          "--type",
          "selfplay",
          "--params",
          '{"n": -2}',
          "--id",
          "via-follower",
        ]);
        expect(cli.stderr.toString()).toBe("");
        expect(cli.exitCode).toBe(0);
        for (let start = 0; start < ITEMS; start += 50) {
          const items = Array.from({ length: 50 }, (_, i) => ({
            id: `item-${start + i}`,
            type: "selfplay",
            config: { n: start + i },
          }));
          const res = await cluster.post(leader, "/work/batch", { items });
          expect(res.status).toBe(200);
        }
        await waitFor(async () => (await completed(voters)) >= 40, 60_000, "40 items completed");
        await cluster.kill(leader);
        await cluster.kill("n5");
        const survivors = voters.filter((id) => id !== leader);
        await waitFor(
          async () => (await completed(survivors)) === ITEMS + 2,
          120_000,
          `all ${ITEMS + 2} items completed`,
        );

        const newLeader = await leaderOf(survivors);
        const { history } = (await cluster.get(newLeader, "/work/history?limit=10000")) as { history: HistoryRow[] };
        const completions = new Map<string, number>();
        for (const h of history)
          if (h.to === "completed") completions.set(h.itemId, (completions.get(h.itemId) ?? 0) + 1);
        expect(completions.size).toBe(ITEMS + 2);
        expect([...completions.values()].every((n) => n === 1)).toBe(true);
        const taken = history.filter((h) => h.to === "claimed");
        expect(taken.length).toBeGreaterThanOrEqual(ITEMS + 2);
        const reclaimed = history.filter((h) => h.cause?.includes("expired") || h.from === "retry-wait");
        console.log(`claims ${taken.length}, reclaimed after the crash: ${reclaimed.length}`);
      }),
    240_000,
  );
});

/** A job that exits while a descendant that left its group still holds stdout must still be reported. */
describe("a job whose descendant keeps its output open", () => {
  let cluster: TestCluster;

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(1, {
      voters: 1,
      capabilities: () => ["leaky"],
      extraToml: `[jobs.leaky]\ncommand = ["sh", "-c", "echo weights > \\"$P2P_OUTPUT_DIR/model.pt\\"; setsid sleep 30 & echo '{\\"ok\\": 1}'"]\ntimeout = "1m"\n`,
    });
    cluster.startAll();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test(
    "completes soon after the job exits, with its result and the files it left",
    () =>
      cluster.withLogs(async () => {
        await waitFor(
          async () => (await cluster.post("n1", "/work", { id: "leaky-1", type: "leaky" })).status === 200,
          15_000,
          "the single node accepts the item",
        );
        const item = await waitFor(
          async () => {
            const got = (await cluster.get("n1", "/work/leaky-1")) as {
              state: string;
              context: { result: unknown; artifacts: string[] };
            };
            return got.state === "completed" ? got : undefined;
          },
          10_000,
          "the item completes (the worker does not wait for the descendant)",
        );
        expect(item.context.result).toEqual({ ok: 1 });
        expect(item.context.artifacts).toHaveLength(1);
        expect(item.context.artifacts[0]).toEndWith("/attempt-1/model.pt");
      }),
    30_000,
  );
});
