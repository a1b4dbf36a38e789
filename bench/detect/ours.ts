/** Our side: the compiled node binary, one process per node on 127.0.0.21, .22, ... */
import { randomBytes } from "node:crypto";
import { chmod } from "node:fs/promises";
import { join, resolve } from "node:path";
import { deriveTiming } from "../../src/config/timing.ts";
import { suspicionBounds } from "../../src/membership/suspicion.ts";
import { assertRunning, Child, makeTempDir, removeTempDir, seconds } from "../lib.ts";
import type { Cluster, SeenState, System } from "./cluster.ts";

const PORT = 8771;
const STATUS_TIMEOUT_MS = 1_000;

export const binPath = () => resolve(process.env.P2P_BIN ?? "dist/p2p-orchestrator");

export async function binMissing(): Promise<string | null> {
  if (await Bun.file(binPath()).exists()) return null;
  return `${binPath()} not found. Build it first (npm run build), or point P2P_BIN at the binary.`;
}

interface StatusBody {
  peers: { id: string; state: string }[];
}

function clusterToml(addresses: readonly string[]): string {
  const nodes = addresses.map(
    (address, i) => `[[nodes]]\nid = "n${i + 1}"\naddress = "${address}"\nvoter = true\ncapabilities = ["selfplay"]\n`,
  );
  const header = `[cluster]\nname = "bench"\nsecret_file = "cluster.secret"\ntoken_file = "operator.token"\ntiming = "lan"\n`;
  return [header, ...nodes].join("\n");
}

async function writeSecret(path: string, content: string): Promise<void> {
  await Bun.write(path, `${content}\n`);
  await chmod(path, 0o600);
}

export const ours: System = {
  label: "p2p-orchestrator",
  timing(nodes) {
    const t = deriveTiming("lan");
    const s = suspicionBounds(nodes, t);
    return (
      `lan profile: probe every ${t.probeIntervalMs} ms (direct ${t.probeTimeoutMs} ms, ${t.indirectProbes} indirect, ` +
      `suspect at ${t.indirectProbeTimeoutMs} ms); suspicion ${seconds(s.minMs)} with ${s.expected} confirmations ` +
      `to ${seconds(s.maxMs)} with none; dead sent to all`
    );
  },
  async start(nodes, trial) {
    const bin = binPath();
    const dir = makeTempDir("bench-detect-");
    const addresses = Array.from({ length: nodes }, (_, i) => `127.0.0.${21 + i}:${PORT + trial}`);
    const ids = addresses.map((_, i) => `n${i + 1}`);
    const token = randomBytes(24).toString("hex");
    const config = join(dir, "cluster.toml");
    const procs: Child[] = [];
    const killed = new Set<number>();

    const view = async (i: number): Promise<Map<string, SeenState> | null> => {
      try {
        const res = await fetch(`http://${addresses[i]}/status`, {
          headers: { Authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
        });
        if (!res.ok) return null;
        const body = (await res.json()) as StatusBody;
        return new Map(
          body.peers.map((p) => [p.id, p.state === "alive" ? "alive" : p.state === "dead" ? "dead" : "other"]),
        );
      } catch {
        return null;
      }
    };

    const cluster: Cluster = {
      ids,
      view,
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
      for (const id of ids) {
        procs.push(new Child(`node ${id}`, [bin, "start", "--config", config, "--node", id], dir));
      }
      return cluster;
    } catch (e) {
      await cluster.stop();
      throw e;
    }
  },
};
