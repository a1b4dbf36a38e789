import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { BIN, requireBinary, TestCluster, waitFor } from "./harness.ts";
import { NetnsLab } from "./netns.ts";

interface Election {
  term: number;
  role: string;
  leader: { id: string } | null;
}

const unavailable = NetnsLab.unavailable();
if (unavailable) console.warn(`leadership integration tests skipped: ${unavailable}`);

/**
 * 5 compiled voters, each in its own network namespace: kill -9 the leader and a new one commits;
 * cut the leader's link and it stops leading within its lease while the majority elects; nothing
 * acknowledged is lost.
 */
describe.skipIf(unavailable !== null)("leadership among 5 compiled voters", () => {
  let lab: NetnsLab;
  let cluster: TestCluster;
  const index = (id: string) => Number(id.slice(1)) - 1;

  beforeAll(() => {
    requireBinary();
    lab = new NetnsLab(5);
    lab.up();
    cluster = new TestCluster(5, {
      voters: 5,
      host: (i) => lab.host(i),
      listenAll: true,
      wrap: (id, argv) => lab.wrap(index(id), argv),
    });
    cluster.startAll();
  });

  afterAll(async () => {
    await cluster?.stop();
    lab?.down();
  });

  const election = async (id: string) => (await cluster.get(id, "/election")) as Election;

  /** The one leader every reachable node agrees on. */
  const agreedLeader = (among: string[]) =>
    waitFor(
      async () => {
        const views = await Promise.all(among.map((id) => election(id).catch(() => null)));
        const first = views[0]?.leader?.id;
        return first && views.every((v) => v?.leader?.id === first) ? first : undefined;
      },
      10_000,
      `one leader agreed by ${among.join(",")}`,
    );

  const write = (among: string[], key: string, value: unknown) =>
    waitFor(
      async () => {
        for (const id of among) {
          const res = await cluster.post(id, "/kv", { key, value }).catch(() => null);
          if (res?.status === 200) return (await res.json()) as { index: number; term: number };
        }
        return undefined;
      },
      10_000,
      `write ${key} committed through one of ${among.join(",")}`,
    );

  const withLogs = (body: () => Promise<void>) => cluster.withLogs(body);

  test(
    "kill -9 the leader: a new leader commits, and nothing acknowledged is lost",
    () =>
      withLogs(async () => {
        const all = cluster.nodes.map((n) => n.id);
        const leader = await agreedLeader(all);
        const first = await write([leader], "before", 1);
        await cluster.kill(leader);
        const survivors = all.filter((id) => id !== leader);
        const next = await write(survivors, "after", 2);
        expect(next.term).toBeGreaterThan(first.term);
        const newLeader = await agreedLeader(survivors);
        expect(newLeader).not.toBe(leader);
        const read = (await cluster.get(newLeader, "/kv?key=before")) as { value: unknown };
        expect(read.value).toBe(1);
        cluster.start(leader);
        await agreedLeader(all);
      }),
    40_000,
  );

  test(
    "cut the leader off: it stops leading within its lease while the majority elects",
    () =>
      withLogs(async () => {
        const all = cluster.nodes.map((n) => n.id);
        const old = await agreedLeader(all);
        const token = cluster.token;
        const port = cluster.node(old).address.split(":")[1];
        const inside = () => {
          const r = Bun.spawnSync(
            lab.wrap(index(old), [
              BIN,
              "election",
              "show",
              "--url",
              `http://127.0.0.1:${port}`,
              "--token",
              token,
              "--json",
            ]),
          );
          return JSON.parse(r.stdout.toString()) as Election;
        };
        const cutAt = Date.now();
        lab.cut(index(old));
        await waitFor(() => inside().role !== "leader", 5_000, "the cut-off leader stops leading");
        const stoppedAfter = Date.now() - cutAt;
        const majority = all.filter((id) => id !== old);
        const elected = await write(majority, "during-cut", 3);
        const newLeader = await agreedLeader(majority);
        expect(newLeader).not.toBe(old);
        // Its lease (400 ms on the LAN profile) ends before the majority can elect (500 ms election minimum).
        expect(stoppedAfter).toBeLessThan(2_000);
        lab.heal(index(old));
        expect(await agreedLeader(all)).toBe(newLeader);
        await waitFor(
          async () => {
            const row = (await cluster.get(old, "/kv?key=during-cut&consistency=local").catch(() => null)) as {
              index?: number;
              value?: unknown;
            } | null;
            return row?.index === elected.index && row.value === 3;
          },
          5_000,
          "the healed node catches up with what the majority committed",
        );
      }),
    40_000,
  );
});
