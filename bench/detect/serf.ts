/** The anchor: HashiCorp Serf agents (LAN profile) on loopback addresses 127.0.0.11, .12, ... */
import { assertRunning, Child, seconds, waitFor } from "../lib.ts";
import type { Cluster, SeenState, System } from "./cluster.ts";

const BIND_PORT = 17946;
const RPC_PORT = 17373;
const QUERY_TIMEOUT_MS = 1_000;

export function serfMissing(): string | null {
  if (Bun.which("serf")) return null;
  return "serf not found on PATH. Install it (Debian/Ubuntu): apt-get install -y serf";
}

interface SerfMembers {
  members: { name: string; status: string }[];
}

/** `serf members` through the agent's RPC address, or null if the agent did not answer. */
async function members(rpcAddr: string): Promise<Map<string, SeenState> | null> {
  const q = Bun.spawn(["serf", "members", "-rpc-addr", rpcAddr, "-format", "json"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "ignore",
    timeout: QUERY_TIMEOUT_MS,
  });
  const [out, code] = await Promise.all([new Response(q.stdout).text(), q.exited]);
  if (code !== 0) return null;
  try {
    const parsed = JSON.parse(out) as SerfMembers;
    return new Map(
      parsed.members.map((m) => [m.name, m.status === "alive" ? "alive" : m.status === "failed" ? "dead" : "other"]),
    );
  } catch {
    return null;
  }
}

export const serf: System = {
  label: "serf (lan)",
  timing(nodes) {
    // memberlist's DefaultLANConfig (ProbeInterval 1 s, ProbeTimeout 500 ms, IndirectChecks 3, SuspicionMult 4,
    // SuspicionMaxTimeoutMult 6, GossipInterval 200 ms) and its suspicion rules (k = SuspicionMult - 2, or 0
    // where fewer than k members could confirm).
    const minMs = 4 * Math.max(1, Math.log10(nodes)) * 1_000;
    const k = nodes - 2 < 2 ? 0 : 2;
    return (
      `memberlist LAN config: probe every 1000 ms (direct 500 ms, 3 indirect, suspect at 1000 ms); ` +
      `suspicion ${seconds(minMs)} with ${k} confirmations to ${seconds(minMs * 6)} with none; dead gossiped`
    );
  },
  async start(nodes, trial) {
    // Fresh ports each trial, so nothing of the previous cluster (sockets, gossip) can leak in.
    const host = (i: number) => `127.0.0.${11 + i}`;
    const bind = (i: number) => `${host(i)}:${BIND_PORT + trial}`;
    const rpc = (i: number) => `${host(i)}:${RPC_PORT + trial}`;
    const ids = Array.from({ length: nodes }, (_, i) => `s${i + 1}`);
    const agents: Child[] = [];
    const killed = new Set<number>();

    const agent = (i: number, join: string[]) =>
      new Child(`serf agent ${ids[i]}`, [
        "serf",
        "agent",
        "-node",
        ids[i] ?? "",
        "-bind",
        bind(i),
        "-rpc-addr",
        rpc(i),
        "-profile",
        "lan",
        ...join,
      ]);

    const cluster: Cluster = {
      ids,
      view: (i) => members(rpc(i)),
      assertRunning: () => assertRunning(agents.filter((_, i) => !killed.has(i))),
      kill(i) {
        killed.add(i);
        agents[i]?.kill();
      },
      async stop() {
        await Promise.all(agents.map((a) => a.stop()));
      },
    };

    try {
      // The seed must be listening before the others join it (a failed -join ends the agent).
      agents.push(agent(0, []));
      await waitFor(
        async () => {
          await cluster.assertRunning();
          return (await members(rpc(0))) !== null;
        },
        10_000,
        "the seed serf agent to answer RPC",
      );
      for (let i = 1; i < nodes; i++) agents.push(agent(i, ["-join", bind(0)]));
      return cluster;
    } catch (e) {
      await cluster.stop();
      throw e;
    }
  },
};
