/**
 * Our side of the queue benchmark: the compiled node binary, 3 voters (timing "lan") on 127.0.0.61-63,
 * with a no-op job type that every node can run (capability "noop") but none takes itself (slots = 0),
 * so the only workers are the benchmark's own signed HTTP clients.
 */
import { randomBytes } from "node:crypto";
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { binPath } from "../detect/ours.ts";
import type { RaftCluster } from "../failover/cluster.ts";
import { assertRunning, Child, errorLabel, makeTempDir, removeTempDir, waitFor } from "../lib.ts";

const PORT = 8971;
const STATUS_TIMEOUT_MS = 1_000;
const LAG_METRIC = "p2p_event_loop_lag_p99_ms";
export const JOB_TYPE = "noop";

export interface ElectionBody {
  term: number;
  role: "follower" | "pre-candidate" | "candidate" | "leader";
  leader: { id: string; address: string } | null;
}

export interface QueueCluster {
  /** Leader discovery, event-loop lag, liveness and teardown, as the other Raft benchmarks use them. */
  raft: RaftCluster;
  addresses: readonly string[];
  /** The operator's bearer token. */
  token: string;
  /** The cluster's shared HMAC secret, for signing /peer/* requests. */
  secret: string;
  /** GET /election on member `i`, or null when it did not answer 200. */
  election(i: number): Promise<ElectionBody | null>;
}

function clusterToml(addresses: readonly string[]): string {
  const header = `[cluster]\nname = "bench"\nsecret_file = "cluster.secret"\ntoken_file = "operator.token"\ntiming = "lan"\n`;
  const jobs = `[jobs.${JOB_TYPE}]\ncommand = ["true"]\n`;
  const nodes = addresses.map(
    (address, i) =>
      `[[nodes]]\nid = "n${i + 1}"\naddress = "${address}"\nvoter = true\ncapabilities = ["${JOB_TYPE}"]\nslots = 0\n`,
  );
  return [header, jobs, ...nodes].join("\n");
}

async function writeSecret(path: string, content: string): Promise<void> {
  await Bun.write(path, `${content}\n`);
  await chmod(path, 0o600);
}

export async function startQueueCluster(): Promise<QueueCluster> {
  const dir = makeTempDir("bench-queue-");
  const addresses = [0, 1, 2].map((i) => `127.0.0.${61 + i}:${PORT}`);
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
    await Bun.write(config, clusterToml(addresses));
    await writeSecret(join(dir, "cluster.secret"), secret);
    await writeSecret(join(dir, "operator.token"), token);
    for (const id of ids)
      procs.push(new Child(`node ${id}`, [binPath(), "start", "--config", config, "--node", id], dir));
    await waitFor(
      async () => {
        await raft.assertRunning();
        return (await election(0)) !== null;
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
