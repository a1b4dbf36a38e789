import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, requireBinary, TestCluster, waitFor } from "./harness.ts";
import { NetnsLab } from "./netns.ts";

const unavailable = NetnsLab.unavailable() ?? NetnsLab.partitionsUnavailable();
if (unavailable) console.warn(`relay integration tests skipped: ${unavailable}`);

interface Peer {
  id: string;
  state: string;
  reach: string;
  lastSeenMs: number;
  resources?: { nat?: boolean; relays?: string[] } | null;
}
interface Status {
  node: { id: string };
  leader: { id: string } | null;
  peers: Peer[];
}

/**
 * A node behind NAT (n4: nobody can connect to it; it connects out) among three public voters and a public worker,
 * each in its own network namespace. It joins and is seen alive everywhere through its relays, follows leader
 * changes, claims and completes work, serves its files to the others and fetches theirs; kill -9 a relay and it is
 * reached through the other.
 */
describe.skipIf(unavailable !== null)("a node behind NAT, through relays", () => {
  let lab: NetnsLab;
  let cluster: TestCluster;
  const NAT = 3; // n4
  const UNLISTENING = 5; // n6: behind NAT with no listening port at all
  const UNDECLARED = 6; // n7: behind NAT without saying so; it finds out
  const index = (id: string) => Number(id.slice(1)) - 1;

  beforeAll(() => {
    requireBinary();
    lab = new NetnsLab(7);
    lab.up();
    cluster = new TestCluster(7, {
      voters: 3,
      host: (i) => lab.host(i),
      listenAll: true,
      wrap: (id, argv) => lab.wrap(index(id), argv),
      capabilities: (i) => (i === NAT ? ["natjob"] : i === UNLISTENING ? ["quietjob"] : ["selfplay"]),
      nodeToml: (i) => (i === NAT ? "nat = true\n" : i === UNLISTENING ? 'nat = true\nlisten = "none"\n' : ""),
      extraToml:
        '[jobs.natjob]\ncommand = ["true"]\n\n[jobs.quietjob]\ncommand = ["true"]\n\n[data.games]\npath = ".data/{id}/games"\nglobs = ["**/*.jsonl"]\nto = "all"\n',
    });
    const port = Number(cluster.nodes[0]?.address.split(":")[1]);
    lab.refuseInbound(NAT, port);
    lab.refuseInbound(UNDECLARED, port);
    cluster.startAll();
  });

  afterAll(async () => {
    await cluster?.stop();
    lab?.down();
  });

  const status = (id: string) => cluster.get(id, "/status") as Promise<Status>;
  /** Submits an item through whoever leads now, again after a leader change, until it is accepted. */
  const submit = (item: { id: string; type: string }) =>
    waitFor(
      async () => {
        const leader = (await status("n1").catch(() => null))?.leader?.id;
        return leader
          ? ((await cluster.post(leader, "/work", item).catch(() => null))?.ok ?? false) || undefined
          : undefined;
      },
      30_000,
      `${item.id} accepted`,
    );
  /** The relays gossiped for `id`, as n2 knows them. */
  const relaysOf = async (id: string) =>
    (await status("n2").catch(() => null))?.peers.find((p) => p.id === id)?.resources?.relays ?? [];
  /** An operator's request for `id`'s own API, sent to `via` naming `id` in the relay header. */
  const viaRelay = (via: string, id: string, path: string) =>
    fetch(`http://${cluster.node(via).address}${path}`, {
      headers: { authorization: `Bearer ${cluster.token}`, "x-p2p-relay-to": id },
      signal: AbortSignal.timeout(2_000),
    });
  /** n6 binds no port: an operator reaches its API through one of the relays it gossips. */
  const statusVia = async (id: string): Promise<Status | undefined> => {
    const [relay] = await relaysOf(id);
    const res = relay ? await viaRelay(relay, id, "/status").catch(() => null) : null;
    return res?.ok ? ((await res.json()) as Status) : undefined;
  };
  /** Every node but n6 (which has no API port) sees `target` alive. */
  const aliveToAll = async (target: string) => {
    const observers = cluster.running().filter((n) => n.id !== target && n.id !== "n6" && n.id !== "n7");
    const states = await Promise.all(observers.map((o) => cluster.stateOf(o.id, target)));
    return states.every((x) => x === "alive") || undefined;
  };
  const relaysOfNat = async (observer: string) =>
    (await status(observer)).peers.find((p) => p.id === "n4")?.resources?.relays ?? [];
  const gamesFile = (id: string, name: string, content = `${name}\n`) => {
    const dir = join(cluster.dir, ".data", id, "games", "c4");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), content);
  };
  const holds = async (id: string, name: string) => {
    const m = (await cluster.get(id, "/manifest?category=games").catch(() => null)) as {
      files: Array<{ path: string }>;
    } | null;
    return m?.files.some((f) => f.path === `c4/${name}`) ?? false;
  };

  test(
    "joins, is seen alive, follows the leader, works, and trades files, all through its relays",
    () =>
      cluster.withLogs(async () => {
        const others = ["n1", "n2", "n3", "n5"];
        // n6 binds no port at all: it is alive to everyone and runs its work all the same.
        await waitFor(() => aliveToAll("n6"), 30_000, "n6 alive everywhere");
        const fromN6 = await waitFor(
          async () => {
            const s = await statusVia("n6");
            return s?.peers.every((p) => p.state === "alive") ? s : undefined;
          },
          30_000,
          "n6 seeing everyone alive (its status read through a relay)",
        );
        expect(fromN6.node.id).toBe("n6");
        // A public member that is not one of its relays passes the request on to one that is (once their gossip
        // has reached it); one already passed on goes no further, and the refusal names n6's relays.
        const n6Relays = await relaysOf("n6");
        const notRelay = others.find((id) => !n6Relays.includes(id)) as string;
        const passedOn = await waitFor(
          async () => {
            const res = await viaRelay(notRelay, "n6", "/status");
            return res.ok ? ((await res.json()) as Status) : undefined;
          },
          10_000,
          `${notRelay}, not a relay of n6, passing a request for it on`,
        );
        expect(passedOn.node.id).toBe("n6");
        const twice = await fetch(`http://${cluster.node(notRelay).address}/status`, {
          headers: { authorization: `Bearer ${cluster.token}`, "x-p2p-relay-to": "n6", "x-p2p-relay-hop": "n9" },
        });
        expect(twice.status).toBe(502);
        expect(((await twice.json()) as { message: string }).message).toBe(
          `this node relays nothing for n6; it is reached through ${n6Relays.join(", ")}`,
        );
        // The CLI, told only the node's id, goes through the file's first public member.
        const cliN6 = Bun.spawnSync([BIN, "status", "--config", cluster.configPath, "--node", "n6"]);
        expect(cliN6.stdout.toString()).toMatch(/^node n6 \(/);
        await waitFor(() => aliveToAll("n4"), 30_000, "n4 alive everywhere");
        const relays = await waitFor(
          async () => {
            const r = await relaysOfNat("n1");
            return r.length === 2 ? r : undefined;
          },
          15_000,
          "n4 gossiping two relays",
        );
        expect(relays.every((r) => others.includes(r))).toBe(true);
        // A relay passes on only what n4 would accept: an unsigned peer request is refused there, not relayed.
        const relay = relays[0] as string;
        const relayedSoFar = async () => {
          const text = await (
            await fetch(`http://${cluster.node(relay).address}/metrics`, {
              headers: { authorization: `Bearer ${cluster.token}` },
            })
          ).text();
          return Number(/^p2p_relay_requests_total (\d+)/m.exec(text)?.[1] ?? Number.NaN);
        };
        // The count also takes the members' own relayed traffic to n4 (SWIM, sync), which may land between the two
        // readings: a relay that passed the forged request on would add to it every time, so one try of five that
        // adds nothing shows it refused.
        const addedByForged: number[] = [];
        for (let i = 0; i < 5 && !addedByForged.includes(0); i++) {
          const before = await relayedSoFar();
          const forged = await fetch(`http://${cluster.node(relay).address}/peer/manifest/games`, {
            headers: { "x-p2p-relay-to": "n4", "x-p2p-node": "intruder" },
          });
          expect(forged.status).toBe(401);
          addedByForged.push((await relayedSoFar()) - before);
        }
        expect(addedByForged).toContain(0);
        // The relay's own status says whom it carries, and the CLI prints it.
        const relayStatus = (await status(relay)) as Status & { node: { relaying?: { nodes: string[] } } };
        expect(relayStatus.node.relaying?.nodes).toContain("n4");
        const cli = Bun.spawnSync([
          BIN,
          "status",
          "--url",
          `http://${cluster.node(relay).address}`,
          "--token",
          cluster.token,
        ]);
        expect(cli.stdout.toString()).toMatch(/relaying for [n0-9, ]*n4.*requests/);
        // Status says how each peer is reached; n4's own status lists the relays it keeps, with their lanes.
        const reach = (await status("n1")).peers.find((p) => p.id === "n4")?.reach;
        expect(reach).toMatch(/^via n[1235]$/);
        // So does the dashboard's node table.
        const ui = `http://${cluster.node("n1").address}/ui`;
        const login = await fetch(`${ui}/login`, {
          method: "POST",
          redirect: "manual",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ token: cluster.token }).toString(),
        });
        const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] as string;
        const page = await (await fetch(ui, { headers: { cookie } })).text();
        expect(/<tr data-node="n4">.*?<span class="muted" data-reach>([^<]*)</s.exec(page)?.[1]).toMatch(
          /^via n[1235]$/,
        );
        const own = (await status("n4")) as Status & { node: { relays?: Array<{ id: string; lanes: string[] }> } };
        const traced = (await cluster.get("n4", "/traces?machine=relay")) as {
          traces: Array<{ to: string; cause: string }>;
        };
        expect(traced.traces.filter((t) => t.to === "connected").length).toBeGreaterThanOrEqual(2);
        expect(own.node.relays?.map((r) => r.lanes.sort())).toEqual([
          ["bulk", "control"],
          ["bulk", "control"],
        ]);
        // It claims and completes work (its own calls out), its result acknowledged through the leader.
        await submit({ id: "behind-nat-1", type: "natjob" });
        await waitFor(
          async () =>
            ((await cluster.get("n1", "/work/behind-nat-1")) as { state: string }).state === "completed" || undefined,
          30_000,
          "n4's item completed",
        );
        await submit({ id: "unlistening-1", type: "quietjob" });
        await waitFor(
          async () =>
            ((await cluster.get("n1", "/work/unlistening-1")) as { state: string }).state === "completed" || undefined,
          30_000,
          "n6's item completed",
        );
        // Its files reach the others (they fetch through the relay), and theirs reach it.
        gamesFile("n4", "from-nat.jsonl");
        gamesFile("n2", "to-nat.jsonl");
        // Three pieces, each answered in many chunks gathered into one buffer, checked piece by piece on arrival.
        const lines = Array.from({ length: 40_000 }, (_, i) =>
          JSON.stringify({ i, r: randomBytes(96).toString("hex") }),
        );
        gamesFile("n4", "large-from-nat.jsonl", `${lines.join("\n")}\n`);
        await waitFor(async () => (await holds("n1", "from-nat.jsonl")) || undefined, 30_000, "n1 fetched n4's file");
        await waitFor(
          async () => (await holds("n1", "large-from-nat.jsonl")) || undefined,
          30_000,
          "n1 fetched n4's large file",
        );
        await waitFor(async () => (await holds("n4", "to-nat.jsonl")) || undefined, 30_000, "n4 fetched n2's file");
        // The leader changes: n4 learns the new one.
        const leader = (await status("n1")).leader?.id as string;
        await cluster.kill(leader);
        const next = await waitFor(
          async () => {
            const l = (await status("n4")).leader?.id;
            return l && l !== leader ? l : undefined;
          },
          30_000,
          "n4 following the new leader",
        );
        expect(["n1", "n2", "n3"]).toContain(next);
        cluster.start(leader);
      }),
    120_000,
  );

  test(
    "a node nobody can reach, though its file does not say so, finds out and takes relays",
    () =>
      cluster.withLogs(async () => {
        const info = await waitFor(
          async () => {
            const peer = (await status("n1")).peers.find((p) => p.id === "n7");
            return peer?.resources?.nat && peer.resources.relays?.length === 2 ? peer : undefined;
          },
          30_000,
          "n7 gossiping that it is behind NAT, with two relays",
        );
        expect(info.reach).toMatch(/^via n/);
        await waitFor(() => aliveToAll("n7"), 30_000, "n7 alive everywhere");
        const traced = (await cluster.get("n7", "/traces?machine=reachability")) as {
          traces: Array<{ from: string; to: string; cause: string }>;
        };
        expect(traced.traces).toMatchObject([{ from: "direct", to: "relayed" }]);
        expect(traced.traces[0]?.cause).toContain("no peer reached this node directly");
      }),
    60_000,
  );

  test(
    "kill -9 a relay: n4 is reached through the other, and gossips a new one",
    () =>
      cluster.withLogs(async () => {
        const [first] = await relaysOfNat("n5");
        const victim = first === "n5" ? "n1" : (first as string);
        const observer = ["n1", "n2", "n3", "n5"].find((id) => id !== victim) as string;
        await cluster.kill(victim);
        const killedAt = Date.now();
        // Reached again: a peer hears from n4 (its probes go through a relay) after the kill, within 5 s.
        const reachedIn = await waitFor(
          async () => {
            const since = Date.now() - killedAt;
            const seen = (await status(observer)).peers.find((p) => p.id === "n4");
            return seen && seen.state === "alive" && seen.lastSeenMs < since - 100 ? since : undefined;
          },
          10_000,
          "n4 heard from after its relay died",
        );
        expect(reachedIn).toBeLessThan(5_000);
        // Meanwhile n4 takes another relay and the observer learns it from gossip.
        const replacement = waitFor(
          async () => {
            const r = await relaysOfNat(observer);
            return r.length === 2 && !r.includes(victim) ? Date.now() - killedAt : undefined;
          },
          15_000,
          "n4 replacing its dead relay",
        );
        // A new file on n4 reaches a peer through the surviving relay.
        gamesFile("n4", "after-relay-death.jsonl");
        await waitFor(
          async () => (await holds(observer, "after-relay-death.jsonl")) || undefined,
          30_000,
          "a fetch after the kill",
        );
        const replaced = await replacement;
        expect(replaced).toBeLessThan(5_000);
        expect(await cluster.stateOf(observer, "n4")).toBe("alive");
        console.log(
          `relay ${victim} killed: n4 heard from after ${reachedIn} ms, a new relay gossiped after ${replaced} ms`,
        );
        cluster.start(victim);
      }),
    90_000,
  );
});
