import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { BIN, requireBinary, TestCluster, waitFor } from "./harness.ts";

/**
 * A TCP relay to `target` that loses the first answer: the first connection's request reaches the
 * node, and when the node's answer comes back the relay hangs up instead of passing it on. Later
 * connections are relayed both ways. This is what a client sees when a leader commits its write and
 * dies (or its network does) before the answer leaves.
 */
function relayLosingFirstAnswer(target: { hostname: string; port: number }) {
  let connections = 0;
  let answersLost = 0;
  type Side = { upstream: Socket | null; pending: Uint8Array[]; loseAnswer: boolean };
  const server: TCPSocketListener<Side> = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        client.data = { upstream: null, pending: [], loseAnswer: connections++ === 0 };
        void Bun.connect({
          ...target,
          socket: {
            data(upstream, chunk) {
              if (!client.data.loseAnswer) return void client.write(chunk);
              answersLost++;
              client.end();
              upstream.end();
            },
            close() {
              client.end();
            },
          },
        }).then(
          (upstream) => {
            client.data.upstream = upstream;
            for (const chunk of client.data.pending.splice(0)) upstream.write(chunk);
          },
          () => client.end(),
        );
      },
      data(client, chunk) {
        if (client.data.upstream) client.data.upstream.write(chunk);
        else client.data.pending.push(new Uint8Array(chunk));
      },
      close(client) {
        client.data.upstream?.end();
      },
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, answersLost: () => answersLost, stop: () => server.stop(true) };
}

describe("work add after a lost answer, through the real binary", () => {
  let cluster: TestCluster;

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(1, { voters: 1, extraToml: '[jobs.selfplay]\ncommand = ["true"]\n' });
    cluster.startAll();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test(
    "the CLI retries with the ids it chose, and the queue holds each item once",
    () =>
      cluster.withLogs(async () => {
        await waitFor(
          async () => (await cluster.post("n1", "/work", { id: "warm-up", type: "selfplay" })).status === 200,
          15_000,
          "the node takes work",
        );
        const [hostname, port] = cluster.node("n1").address.split(":") as [string, string];
        /** Runs `work add` through a relay that loses its first answer; returns what it printed as JSON. */
        const addThroughLossyRelay = async (args: string[]) => {
          const relay = relayLosingFirstAnswer({ hostname, port: Number(port) });
          try {
            const cli = Bun.spawn([BIN, "work", "add", ...args, "--json"], {
              env: { ...process.env, P2P_URL: relay.url, P2P_TOKEN: cluster.token },
              stdout: "pipe",
              stderr: "pipe",
            });
            const [code, out, err] = await Promise.all([
              cli.exited,
              new Response(cli.stdout).text(),
              new Response(cli.stderr).text(),
            ]);
            expect(relay.answersLost()).toBe(1);
            expect({ code, err }).toEqual({ code: 0, err: expect.stringContaining("retrying with the same id(s)") });
            return JSON.parse(out) as unknown;
          } finally {
            relay.stop();
          }
        };
        const single = (await addThroughLossyRelay(["--type", "selfplay", "--params", '{"games": 3}'])) as {
          id: string;
          existing: boolean;
        };
        expect(single.existing).toBe(true);
        const file = join(cluster.dir, "batch.json");
        writeFileSync(
          file,
          JSON.stringify({ items: [1, 2, 3].map((games) => ({ type: "selfplay", config: { games } })) }),
        );
        const batch = (await addThroughLossyRelay(["--file", file])) as { added: string[]; existing: string[] };
        expect(batch.added).toEqual([]);
        expect(batch.existing).toHaveLength(3);
        const { items } = (await cluster.get("n1", "/work?limit=100")) as { items: Array<{ id: string }> };
        expect(items.map((i) => i.id).sort()).toEqual([single.id, "warm-up", ...batch.existing].sort());
      }),
    30_000,
  );
});
