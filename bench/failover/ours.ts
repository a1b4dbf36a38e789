/** Our side: the compiled node binary, 3 voters (timing "lan") on 127.0.0.51-53. */
import { randomBytes } from "node:crypto";
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { binMissing, binPath } from "../detect/ours.ts";
import { assertRunning, Child, errorLabel, makeTempDir, removeTempDir, waitFor } from "../lib.ts";
import type { RaftCluster, RaftSystem } from "./cluster.ts";

const PORT = 8871;
const STATUS_TIMEOUT_MS = 1_000;
const LAG_METRIC = "p2p_event_loop_lag_p99_ms";

export interface ElectionBody {
  term: number;
  role: "follower" | "pre-candidate" | "candidate" | "leader";
  leader: { id: string; address: string } | null;
}

/** A running cluster of our binary, with what the benchmarks need to drive it. */
export interface OurCluster {
  raft: RaftCluster;
  addresses: readonly string[];
  /** The operator's bearer token. */
  token: string;
  /** The cluster's shared HMAC secret, for signing /peer/* requests. */
  secret: string;
  /** GET /election on member `i`, or null when it did not answer 200. */
  election(i: number): Promise<ElectionBody | null>;
}

export interface OurClusterOptions {
  /** Members sit at 127.0.0.<firstHost + i>:<port>. */
  firstHost: number;
  port: number;
  /** Extra cluster-file tables (job templates), and extra keys for every [[nodes]] entry. */
  extraToml?: string;
  nodeToml?: string;
  /** More [[nodes]] entries after the voters (nodes the bench itself acts as). */
  extraNodes?: string;
}

function clusterToml(addresses: readonly string[], opts: OurClusterOptions): string {
  const header = `[cluster]\nname = "bench"\nsecret_file = "cluster.secret"\ntoken_file = "operator.token"\ntiming = "lan"\n`;
  const nodes = addresses.map(
    (address, i) => `[[nodes]]\nid = "n${i + 1}"\naddress = "${address}"\nvoter = true\n${opts.nodeToml ?? ""}`,
  );
  return [header, opts.extraToml ?? "", ...nodes, opts.extraNodes ?? ""].join("\n");
}

async function writeSecret(path: string, content: string): Promise<void> {
  await Bun.write(path, `${content}\n`);
  await chmod(path, 0o600);
}

/** GET /election's HTTP status on a node, or null when it did not answer. */
async function electionStatus(address: string, token: string): Promise<number | null> {
  try {
    const res = await fetch(`http://${address}/election`, {
      headers: { Authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return null;
  }
}

/** Starts 3 voters of our binary and waits until the first answers GET /election. */
export async function startOurCluster(opts: OurClusterOptions): Promise<OurCluster> {
  const dir = makeTempDir("bench-raft-");
  const addresses = [0, 1, 2].map((i) => `127.0.0.${opts.firstHost + i}:${opts.port}`);
  const ids = addresses.map((_, i) => `n${i + 1}`);
  const token = randomBytes(24).toString("hex");
  const secret = randomBytes(32).toString("hex");
  const auth = { Authorization: `Bearer ${token}` };
  const config = join(dir, "cluster.toml");
  const procs: Child[] = [];
  const killed = new Set<number>();
  const live = () => ids.map((_, i) => i).filter((i) => !killed.has(i));
  const get = (i: number, path: string) =>
    fetch(`http://${addresses[i]}${path}`, { headers: auth, signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });

  const election = async (i: number): Promise<ElectionBody | null> => {
    try {
      const res = await get(i, "/election");
      return res.ok ? ((await res.json()) as ElectionBody) : null;
    } catch {
      return null;
    }
  };

  const raft: RaftCluster = {
    size: ids.length,
    async leader() {
      const up = live();
      const seen = await Promise.all(up.map(election));
      const leaderId = seen[0]?.leader?.id;
      if (leaderId === undefined || seen.some((s) => s?.leader?.id !== leaderId)) return null;
      const at = ids.indexOf(leaderId);
      return up.includes(at) && seen[up.indexOf(at)]?.role === "leader" ? at : null;
    },
    async put(i, key, value, timeoutMs) {
      try {
        const res = await fetch(`http://${addresses[i]}/kv`, {
          method: "POST",
          headers: { ...auth, "Content-Type": "application/json" },
          body: JSON.stringify({ key, value }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.arrayBuffer();
        return res.ok ? null : res.status === 421 ? "421 not_leader" : `HTTP ${res.status}`;
      } catch (e) {
        return errorLabel(e);
      }
    },
    async eventLoopLagMs(i) {
      try {
        const res = await get(i, "/metrics");
        const text = await res.text();
        const line = text.split("\n").find((l) => l.startsWith(`${LAG_METRIC} `) || l.startsWith(`${LAG_METRIC}{`));
        const value = Number(line?.trim().split(/\s+/).at(-1));
        return res.ok && line !== undefined && Number.isFinite(value) ? value : null;
      } catch {
        return null;
      }
    },
    assertRunning: () => assertRunning(procs.filter((_, i) => !killed.has(i))),
    kill(i) {
      killed.add(i);
      procs[i]?.kill();
    },
    async stop() {
      await Promise.all(procs.map((p) => p.stop()));
      removeTempDir(dir);
    },
  };

  try {
    await Bun.write(config, clusterToml(addresses, opts));
    await writeSecret(join(dir, "cluster.secret"), secret);
    await writeSecret(join(dir, "operator.token"), token);
    for (const id of ids)
      procs.push(new Child(`node ${id}`, [binPath(), "start", "--config", config, "--node", id], dir));
    // Fail fast, with a clear message, on a binary without the Raft API rather than timing out later.
    await waitFor(
      async () => {
        await raft.assertRunning();
        const status = await electionStatus(addresses[0] ?? "", token);
        if (status === 404) throw new Error(`${binPath()} answers GET /election with 404: no Raft API in this build`);
        return status === 200;
      },
      30_000,
      "node n1 to answer GET /election",
    );
    return { raft, addresses, token, secret, election };
  } catch (e) {
    await raft.stop();
    throw e;
  }
}

export const ours: RaftSystem = {
  label: "p2p-orchestrator",
  missing: binMissing,
  async start(trial) {
    return (await startOurCluster({ firstHost: 51, port: PORT + trial })).raft;
  },
};
