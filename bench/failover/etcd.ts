/** The anchor: etcd 3.4, 3 members on 127.0.0.41-43 with default timings, driven through its v3 JSON gateway. */
import { join } from "node:path";
import { assertRunning, Child, errorLabel, makeTempDir, removeTempDir } from "../lib.ts";
import type { RaftCluster, RaftSystem } from "./cluster.ts";

const CLIENT_PORT = 2379;
const PEER_PORT = 2380;
const STATUS_TIMEOUT_MS = 1_000;

export function etcdMissing(): string | null {
  if (Bun.which("etcd")) return null;
  return "etcd not found on PATH. Install it (Debian/Ubuntu): apt-get install -y etcd-server etcd-client";
}

interface StatusBody {
  header: { member_id: string };
  leader: string;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

export const etcd: RaftSystem = {
  label: "etcd 3.4",
  missing: async () => etcdMissing(),
  async start(trial) {
    const dir = makeTempDir("bench-etcd-");
    const host = (i: number) => `127.0.0.${41 + i}`;
    // Fresh ports each trial (10 apart), so no connection of the previous cluster can leak in.
    const client = (i: number) => `http://${host(i)}:${CLIENT_PORT + 10 * trial}`;
    const peer = (i: number) => `http://${host(i)}:${PEER_PORT + 10 * trial}`;
    const names = ["e1", "e2", "e3"];
    const initialCluster = names.map((name, i) => `${name}=${peer(i)}`).join(",");
    const members: Child[] = [];
    const killed = new Set<number>();
    const live = () => names.map((_, i) => i).filter((i) => !killed.has(i));

    const post = (i: number, path: string, body: unknown, timeoutMs: number) =>
      fetch(`${client(i)}${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });

    const status = async (i: number): Promise<StatusBody | null> => {
      try {
        const res = await post(i, "/v3/maintenance/status", {}, STATUS_TIMEOUT_MS);
        return res.ok ? ((await res.json()) as StatusBody) : null;
      } catch {
        return null;
      }
    };

    const cluster: RaftCluster = {
      size: names.length,
      async leader() {
        const up = live();
        const seen = await Promise.all(up.map(status));
        // Ids are uint64s as strings: compare them as strings.
        const leaderId = seen[0]?.leader;
        if (!leaderId || leaderId === "0" || seen.some((s) => s?.leader !== leaderId)) return null;
        const at = seen.findIndex((s) => s?.header.member_id === leaderId);
        return at < 0 ? null : (up[at] ?? null);
      },
      async put(i, key, value, timeoutMs) {
        try {
          const res = await post(i, "/v3/kv/put", { key: b64(key), value: b64(value) }, timeoutMs);
          await res.arrayBuffer();
          return res.ok ? null : `HTTP ${res.status}`;
        } catch (e) {
          return errorLabel(e);
        }
      },
      assertRunning: () => assertRunning(members.filter((_, i) => !killed.has(i))),
      kill(i) {
        killed.add(i);
        members[i]?.kill();
      },
      async stop() {
        await Promise.all(members.map((m) => m.stop()));
        removeTempDir(dir);
      },
    };

    names.forEach((name, i) => {
      members.push(
        new Child(`etcd ${name}`, [
          "etcd",
          "--name",
          name,
          "--data-dir",
          join(dir, name),
          "--listen-client-urls",
          client(i),
          "--advertise-client-urls",
          client(i),
          "--listen-peer-urls",
          peer(i),
          "--initial-advertise-peer-urls",
          peer(i),
          "--initial-cluster",
          initialCluster,
          "--initial-cluster-state",
          "new",
          "--initial-cluster-token",
          `bench-${trial}-${process.pid}`,
        ]),
      );
    });
    return cluster;
  },
};
