import { randomBytes } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import type { Subprocess } from "bun";
import type { NodeStatus } from "../../src/node/status.ts";

/** Drives the compiled binary as a cluster of real processes on loopback addresses. */
export const BIN = resolve(process.env.P2P_BIN ?? "dist/p2p-orchestrator");

export function requireBinary(): void {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run "npm run build" first (npm test does)`);
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `deadlineMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  deadlineMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  let lastThrew = false;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
      lastThrew = false;
    } catch (e) {
      lastError = e;
      lastThrew = true;
    }
    await Bun.sleep(50);
  }
  // An early error (say a 404 before a replica applied the entry) must not read as the reason of the last check.
  const why = lastThrew
    ? `the last check failed: ${String(lastError)}`
    : `the last check answered not yet${lastError ? `; an earlier one failed: ${String(lastError)}` : ""}`;
  throw new Error(`not within ${deadlineMs} ms: ${what} (${why})`);
}

export interface TestNode {
  id: string;
  address: string;
  proc: Subprocess | null;
  logFile: string;
}

export class TestCluster {
  readonly dir: string;
  readonly configPath: string;
  readonly token: string;
  readonly nodes: TestNode[];

  /** Runs a node's command inside something else (a network namespace), if set. */
  private readonly wrap: (id: string, argv: string[]) => string[];

  constructor(
    count: number,
    opts: {
      port?: number;
      voters?: number;
      /** Host of node i (0-based); default distinct 127.0.0.x addresses. */
      host?: (i: number) => string;
      listenAll?: boolean;
      wrap?: (id: string, argv: string[]) => string[];
      /** Capabilities of node i (default: ["selfplay"]). */
      capabilities?: (i: number) => string[];
      /** Job slots of node i (default: the CPU count). */
      slots?: (i: number) => number;
      /** Appended to the cluster file (job templates). */
      extraToml?: string;
      /** More keys for node i's [[nodes]] entry (`nat = true`). */
      nodeToml?: (i: number) => string;
    } = {},
  ) {
    this.dir = mkdtempSync(join(tmpdir(), "p2p-it-"));
    const port = opts.port ?? 20_000 + Math.floor(Math.random() * 20_000);
    const firstHost = 2 + Math.floor(Math.random() * 200);
    const host = opts.host ?? ((i: number) => `127.0.0.${firstHost + i}`);
    this.wrap = opts.wrap ?? ((_id, argv) => argv);
    this.nodes = Array.from({ length: count }, (_, i) => ({
      id: `n${i + 1}`,
      address: `${host(i)}:${port}`,
      proc: null,
      logFile: join(this.dir, `n${i + 1}.log`),
    }));
    this.configPath = join(this.dir, "cluster.toml");
    const voters = opts.voters ?? 3;
    const listen = opts.listenAll ? `listen = "0.0.0.0:${port}"\n` : "";
    const entries = this.nodes
      .map(
        (n, i) =>
          `[[nodes]]\nid = "${n.id}"\naddress = "${n.address}"\n${opts.nodeToml?.(i)?.includes("listen =") ? "" : listen}voter = ${i < voters}\ncapabilities = ${JSON.stringify(opts.capabilities?.(i) ?? ["selfplay"])}\n${opts.slots ? `slots = ${opts.slots(i)}\n` : ""}${opts.nodeToml?.(i) ?? ""}`,
      )
      .join("\n");
    writeFileSync(
      this.configPath,
      `[cluster]\nname = "it"\ntiming = "lan"\nlog_level = "debug"\n\n${opts.extraToml ?? ""}\n${entries}`,
    );
    writeFileSync(join(this.dir, "cluster.secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
    this.token = randomBytes(24).toString("hex");
    writeFileSync(join(this.dir, "operator.token"), this.token, { mode: 0o600 });
  }

  node(id: string): TestNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /**
   * Starts node `id`; `env` adds variables (such as P2P_FAILPOINTS) to its environment; `configPath` gives it
   * another cluster file (one beside other secrets, say).
   */
  start(id: string, env: Record<string, string> = {}, configPath = this.configPath): void {
    const n = this.node(id);
    const out = openSync(n.logFile, "a");
    const argv = this.wrap(id, [BIN, "start", "--config", configPath, "--node", id]);
    n.proc = Bun.spawn(argv, { stdout: out, stderr: out, env: { ...process.env, ...env } });
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n.id);
  }

  async kill(id: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const n = this.node(id);
    n.proc?.kill(signal);
    await n.proc?.exited;
    n.proc = null;
  }

  signal(id: string, signal: NodeJS.Signals): void {
    this.node(id).proc?.kill(signal);
  }

  running(): TestNode[] {
    return this.nodes.filter((n) => n.proc !== null);
  }

  async post(id: string, path: string, body: unknown): Promise<Response> {
    return fetch(`http://${this.node(id).address}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(1_000),
    });
  }

  async status(id: string): Promise<NodeStatus> {
    return (await this.get(id, "/status")) as NodeStatus;
  }

  async get(id: string, pathWithQuery: string): Promise<unknown> {
    const res = await fetch(`http://${this.node(id).address}${pathWithQuery}`, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(1_000),
    });
    if (!res.ok) throw new Error(`${id} ${pathWithQuery}: ${res.status}`);
    return res.json();
  }

  /** What `observer` says about `target`'s state, or undefined if it is unreachable or does not know it. */
  async stateOf(observer: string, target: string): Promise<string | undefined> {
    const s = await this.status(observer).catch(() => undefined);
    return s?.peers.find((p) => p.id === target)?.state;
  }

  /** True when every running node other than `target` reports `target` in `state`. */
  async allSee(target: string, state: string): Promise<boolean> {
    const observers = this.running().filter((n) => n.id !== target);
    const states = await Promise.all(observers.map((o) => this.stateOf(o.id, target)));
    return states.every((s) => s === state);
  }

  async converged(): Promise<boolean> {
    const up = this.running();
    const views = await Promise.all(up.map((n) => this.status(n.id).catch(() => undefined)));
    return views.every(
      (v) =>
        v !== undefined && up.every((t) => t.id === v.node.id || v.peers.find((p) => p.id === t.id)?.state === "alive"),
    );
  }

  /**
   * Runs a test body; if it fails, prints every node's log tail first and keeps the whole logs under
   * test-artifacts/logs/ (the cluster's directory goes when it stops).
   */
  async withLogs(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (e) {
      console.error(this.logs());
      console.error(`whole logs: ${this.keepLogs()}`);
      throw e;
    }
  }

  private keepLogs(): string {
    const kept = resolve("test-artifacts", "logs", basename(this.dir));
    mkdirSync(kept, { recursive: true });
    for (const n of this.nodes) if (existsSync(n.logFile)) copyFileSync(n.logFile, join(kept, basename(n.logFile)));
    return kept;
  }

  logs(): string {
    return this.nodes
      .map((n) => `--- ${n.id}\n${existsSync(n.logFile) ? readFileSync(n.logFile, "utf8").slice(-4000) : ""}`)
      .join("\n");
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) {
      n.proc?.kill("SIGCONT");
      n.proc?.kill("SIGKILL");
    }
    await Promise.all(this.nodes.map((n) => n.proc?.exited));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
