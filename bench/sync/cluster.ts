/**
 * Our side of the data-sync benchmark: a cluster of the compiled binary with one data category,
 * `blobs`, that the origin (n1, the only voter) holds and every other node (capability "sink") receives.
 */
import { randomBytes } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { binPath } from "../detect/ours.ts";
import { assertRunning, Child, makeTempDir, removeTempDir, waitFor } from "../lib.ts";

const REQUEST_TIMEOUT_MS = 5_000;
const CONVERGE_DEADLINE_MS = 60_000;
export const CATEGORY = "blobs";
export const SINK = "sink";

export interface SyncClusterOptions {
  nodes: number;
  /** Node i sits at 127.0.0.<firstHost + i>:<port>. */
  firstHost: number;
  port: number;
  /** Per-node upload and download limit in bytes per second; 0 = unlimited. */
  rateBytesPerSec: number;
  swarm: boolean;
  /** The category's `stagger` in ms (0 = none). */
  staggerMs: number;
}

export interface TraceRow {
  seq: number;
  instance: string;
  from: string | null;
  to: string;
  event: string;
  cause: string | null;
  at: number;
}

export interface SessionView {
  id: string;
  sha256: string;
  path: string;
  state: string;
  bytesDone: number;
  bytesTotal: number;
  attempts: number;
  sources: string[];
  lastError: string | null;
  startedAt: number;
  updatedAt: number;
}

export interface SyncStatusView {
  active: SessionView[];
  recent: SessionView[];
  uploads: { inUse: number; limit: number };
}

interface StatusBody {
  peers: { id: string; state: string; resources: { capabilities?: string[] } | null }[];
}

export interface SyncCluster {
  readonly dir: string;
  readonly ids: readonly string[];
  readonly addresses: readonly string[];
  /** The category's folder on node i (data/<id>/blobs). */
  root(i: number): string;
  get<T>(i: number, path: string): Promise<T>;
  post<T>(i: number, path: string, body: unknown): Promise<T>;
  /** A Prometheus sample `name{labels}` from node i's GET /metrics; 0 when absent. */
  metric(i: number, name: string, labels: string): Promise<number>;
  /** Hard-links `source` into node i's category root as `name` (same filesystem, no copy). */
  place(i: number, source: string, name: string): void;
  /** True once node i's copy of `name` has been committed (atomic rename) with `size` bytes. */
  holds(i: number, name: string, size: number): boolean;
  /** Whether node i's manifest of the category lists `name` with `size` bytes. */
  indexed(i: number, name: string, size: number): Promise<boolean>;
  /** The last lines of node i's log (JSON lines on stdout). */
  logTail(i: number, lines: number): string;
  assertRunning(): Promise<void>;
  stop(): Promise<void>;
}

function clusterToml(addresses: readonly string[], opts: SyncClusterOptions): string {
  const rate = opts.rateBytesPerSec > 0 ? `${opts.rateBytesPerSec}` : "0";
  const lines = [
    "[cluster]",
    'name = "bench"',
    'secret_file = "cluster.secret"',
    'token_file = "operator.token"',
    'timing = "lan"',
    "",
    "[sync]",
    `download_rate = ${rate}`,
    `upload_rate = ${rate}`,
    'scan_interval = "1s"',
    "",
    `[data.${CATEGORY}]`,
    `path = "data/{id}/${CATEGORY}"`,
    'globs = ["**/*"]',
    `to = ["${SINK}"]`,
    `swarm = ${opts.swarm}`,
    `stagger = ${opts.staggerMs > 0 ? `"${opts.staggerMs}ms"` : "0"}`,
    "",
  ];
  const nodes = addresses.map((address, i) =>
    [
      "[[nodes]]",
      `id = "n${i + 1}"`,
      `address = "${address}"`,
      `voter = ${i === 0}`,
      `capabilities = ${i === 0 ? "[]" : `["${SINK}"]`}`,
      "",
    ].join("\n"),
  );
  return [...lines, ...nodes].join("\n");
}

async function writeSecret(path: string, content: string): Promise<void> {
  await Bun.write(path, `${content}\n`);
  await chmod(path, 0o600);
}

/**
 * Starts the nodes and waits until every node sees every other alive and knows its capabilities (the
 * swarm's per-file order is computed from them, so every node must agree on who the receivers are).
 */
export async function startSyncCluster(opts: SyncClusterOptions): Promise<SyncCluster> {
  const dir = makeTempDir("bench-sync-");
  const addresses = Array.from({ length: opts.nodes }, (_, i) => `127.0.0.${opts.firstHost + i}:${opts.port}`);
  const ids = addresses.map((_, i) => `n${i + 1}`);
  const token = randomBytes(24).toString("hex");
  const auth = { Authorization: `Bearer ${token}` };
  const config = join(dir, "cluster.toml");
  const logPath = (i: number) => join(dir, `${ids[i]}.log`);
  const procs: Child[] = [];
  const root = (i: number) => join(dir, "data", ids[i] ?? "", CATEGORY);

  const request = async <T>(i: number, path: string, init: RequestInit = {}): Promise<T> => {
    const res = await fetch(`http://${addresses[i]}${path}`, {
      ...init,
      headers: { ...auth, "Content-Type": "application/json" },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (!res.ok) throw new Error(`${ids[i]} ${init.method ?? "GET"} ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  const cluster: SyncCluster = {
    dir,
    ids,
    addresses,
    root,
    get: (i, path) => request(i, path),
    post: (i, path, body) => request(i, path, { method: "POST", body: JSON.stringify(body) }),
    async metric(i, name, labels) {
      const res = await fetch(`http://${addresses[i]}/metrics`, {
        headers: auth,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
      return line ? Number(line.trim().split(/\s+/).at(-1)) : 0;
    },
    place(i, source, name) {
      mkdirSync(root(i), { recursive: true });
      linkSync(source, join(root(i), name));
    },
    holds(i, name, size) {
      const file = join(root(i), name);
      return existsSync(file) && statSync(file).size === size;
    },
    async indexed(i, name, size) {
      try {
        const m = await request<{ files: { path: string; size: number }[] }>(i, `/manifest?category=${CATEGORY}`);
        return m.files.some((f) => f.path === name && f.size === size);
      } catch {
        return false;
      }
    },
    logTail(i, lines) {
      try {
        return readFileSync(logPath(i), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
      } catch {
        return "(no log)";
      }
    },
    assertRunning: () => assertRunning(procs),
    async stop() {
      await Promise.all(procs.map((p) => p.stop()));
      removeTempDir(dir);
    },
  };

  try {
    await Bun.write(config, clusterToml(addresses, opts));
    await writeSecret(join(dir, "cluster.secret"), randomBytes(32).toString("hex"));
    await writeSecret(join(dir, "operator.token"), token);
    for (let i = 0; i < ids.length; i++) {
      mkdirSync(root(i), { recursive: true });
      // stdout (the JSON log) goes to a file for the report; stderr stays with Child for crash reports.
      const cmd = ["sh", "-c", 'log=$1; shift; exec "$@" >>"$log"', "sh", logPath(i)];
      procs.push(
        new Child(`node ${ids[i]}`, [...cmd, binPath(), "start", "--config", config, "--node", ids[i] ?? ""], dir),
      );
    }
    const converged = async (i: number): Promise<boolean> => {
      try {
        const s = await request<StatusBody>(i, "/status");
        return ids.every(
          (id, j) =>
            j === i ||
            s.peers.some(
              (p) =>
                p.id === id && p.state === "alive" && (j === 0 || (p.resources?.capabilities ?? []).includes(SINK)),
            ),
        );
      } catch {
        return false;
      }
    };
    await waitFor(
      async () => {
        await cluster.assertRunning();
        return (await Promise.all(ids.map((_, i) => converged(i)))).every(Boolean);
      },
      CONVERGE_DEADLINE_MS,
      `all ${ids.length} nodes to see each other alive with their capabilities`,
      100,
    );
    return cluster;
  } catch (e) {
    await cluster.stop();
    throw e;
  }
}
