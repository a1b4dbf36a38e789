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

interface ElectionBody {
  term: number;
  role: "follower" | "pre-candidate" | "candidate" | "leader";
  leader: { id: string; address: string } | null;
}

function clusterToml(addresses: readonly string[]): string {
  const header = `[cluster]\nname = "bench"\nsecret_file = "cluster.secret"\ntoken_file = "operator.token"\ntiming = "lan"\n`;
  const nodes = addresses.map((address, i) => `[[nodes]]\nid = "n${i + 1}"\naddress = "${address}"\nvoter = true\n`);
  return [header, ...nodes].join("\n");
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

export const ours: RaftSystem = {
  label: "p2p-orchestrator",
  missing: binMissing,
  async start(trial) {
    const dir = makeTempDir("bench-raft-");
    const addresses = [0, 1, 2].map((i) => `127.0.0.${51 + i}:${PORT + trial}`);
    const ids = addresses.map((_, i) => `n${i + 1}`);
    const token = randomBytes(24).toString("hex");
    const auth = { Authorization: `Bearer ${token}` };
    const config = join(dir, "cluster.toml");
    const procs: Child[] = [];
    const killed = new Set<number>();
    const live = () => ids.map((_, i) => i).filter((i) => !killed.has(i));

    const election = async (i: number): Promise<ElectionBody | null> => {
      try {
        const res = await fetch(`http://${addresses[i]}/election`, {
          headers: auth,
          signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
        });
        return res.ok ? ((await res.json()) as ElectionBody) : null;
      } catch {
        return null;
      }
    };

    const cluster: RaftCluster = {
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
          const res = await fetch(`http://${addresses[i]}/metrics`, {
            headers: auth,
            signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
          });
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
      await writeSecret(join(dir, "cluster.secret"), randomBytes(32).toString("hex"));
      await writeSecret(join(dir, "operator.token"), token);
      for (const id of ids)
        procs.push(new Child(`node ${id}`, [binPath(), "start", "--config", config, "--node", id], dir));
      // Fail fast, with a clear message, on a binary without the Raft API rather than timing out later.
      await waitFor(
        async () => {
          await cluster.assertRunning();
          const status = await electionStatus(addresses[0] ?? "", token);
          if (status === 404) throw new Error(`${binPath()} answers GET /election with 404: no Raft API in this build`);
          return status === 200;
        },
        30_000,
        "node n1 to answer GET /election",
      );
      return cluster;
    } catch (e) {
      await cluster.stop();
      throw e;
    }
  },
};
