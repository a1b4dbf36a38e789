import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { BIN, requireBinary, TestCluster, waitFor } from "./harness.ts";

/**
 * Draining a node for maintenance, through the compiled binary: the drain is gossiped (every node's status and
 * why-pending say so, with the reason), survives a restart of the drained node, and an undrain lets it claim again.
 */
describe("drain and undrain a worker", () => {
  let cluster: TestCluster;

  beforeAll(() => {
    requireBinary();
    // n1 is the voter and runs nothing; n2 alone runs "probe".
    cluster = new TestCluster(2, {
      voters: 1,
      capabilities: (i) => (i === 1 ? ["probe"] : []),
      extraToml: '[jobs.probe]\ncommand = ["true"]\n',
    });
    cluster.startAll();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  const item = async (id: string) =>
    (await cluster.get("n1", `/work/${id}`)) as {
      state: string;
      whyPending: { nodes: Array<{ node: string; reasons: string[] }> } | null;
    };
  const drainSeenBy = async (observer: string) =>
    (await cluster.status(observer).catch(() => undefined))?.peers.find((p) => p.id === "n2")?.resources?.draining;
  const submit = (id: string) =>
    waitFor(
      async () => (await cluster.post("n1", "/work", { id, type: "probe" }).catch(() => null))?.status === 200,
      20_000,
      `${id} accepted`,
    );

  test(
    "a drained node claims nothing, everyone sees why, it stays drained across a restart, and undrained it works",
    () =>
      cluster.withLogs(async () => {
        await submit("before");
        await waitFor(async () => (await item("before")).state === "completed", 30_000, "a probe before the drain");

        const cli = (...args: string[]) => {
          const url = `http://${cluster.node("n2").address}`;
          const proc = Bun.spawnSync([BIN, ...args, "--url", url, "--token", cluster.token]);
          if (proc.exitCode !== 0) throw new Error(`${args.join(" ")} exited ${proc.exitCode}: ${proc.stderr}`);
          return proc.stdout.toString();
        };
        expect(JSON.parse(cli("drain", "--reason", "disk swap"))).toMatchObject({
          draining: true,
          reason: "disk swap",
        });
        await waitFor(
          async () => (await drainSeenBy("n1")) === "disk swap" || undefined,
          15_000,
          "n1 seeing the drain",
        );
        expect(cli("status")).toContain("drained: disk swap");

        await submit("during");
        const pending = await waitFor(
          async () => {
            const i = await item("during");
            return i.whyPending?.nodes.some((n) => n.node === "n2") ? i : undefined;
          },
          15_000,
          "why-pending naming n2",
        );
        expect(pending.state).toBe("pending");
        expect(pending.whyPending?.nodes.find((n) => n.node === "n2")?.reasons).toEqual(["drained: disk swap"]);

        // The drain is the operator's until they lift it: a restart keeps it. n1 hears it from the new process
        // (gossip sampled after the restart), and the item is still not claimed then.
        await cluster.kill("n2");
        const restartedAt = Date.now();
        cluster.start("n2");
        const own = await waitFor(
          async () => (await cluster.status("n2").catch(() => undefined))?.node.resources?.draining,
          15_000,
          "n2 back, saying it is drained",
        );
        expect(own).toBe("disk swap");
        await waitFor(
          async () => {
            const seen = (await cluster.status("n1")).peers.find((p) => p.id === "n2")?.resources;
            return (seen?.sampledAt ?? 0) > restartedAt && seen?.draining === "disk swap" ? true : undefined;
          },
          15_000,
          "n1 hearing the restarted n2 is still drained",
        );
        expect((await item("during")).state).toBe("pending");

        expect(JSON.parse(cli("undrain"))).toMatchObject({ draining: false, reason: null });
        await waitFor(async () => (await item("during")).state === "completed", 30_000, "the probe after the undrain");
        await waitFor(
          async () => (await drainSeenBy("n1")) === undefined || undefined,
          15_000,
          "n1 seeing the undrain",
        );
      }),
    90_000,
  );
});
