import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestCluster, waitFor } from "../integration/harness.ts";
import { NetnsLab } from "../integration/netns.ts";
import { seededRandom } from "../sim/rng.ts";
import { mountSmallDisk, type SmallDisk } from "../unit/small-disk.ts";
import { checkRegister, type RegisterOp, type Verdict } from "./linearizability.ts";
import { describeFault, FAULT_KINDS, type Fault, type ScheduledFault, schedule } from "./schedule.ts";

/**
 * The nemesis against real processes: compiled voters in network namespaces, each on its own small disk, with
 * clients writing and reading the replicated register and submitting work while faults come and go on a seeded
 * schedule (partitions, a bridge, one-way loss, kill -9, SIGSTOP, a full disk). Afterwards the register history
 * is checked for linearizability and the work for exactly-once completion of everything acknowledged.
 */

export interface NemesisOptions {
  seed: number;
  durationMs: number;
  voters?: number;
  kinds?: readonly Fault["kind"][];
  /** A schedule of one's own instead of the seed's. */
  faults?: ScheduledFault[];
  /** P2P_FAILPOINTS for every node (a planted bug the checkers must catch). */
  failpoints?: string;
  /** Where a failing run keeps its history. */
  artifacts: string;
  log?: (line: string) => void;
}

export interface NemesisReport {
  ok: boolean;
  seed: number;
  faults: string[];
  register: { writes: number; reads: number; unknown: number; verdicts: Record<string, Verdict> };
  work: { acked: number; completed: number; lost: string[]; doubled: string[] };
  /** The folder with the history of a failing run, and how to replay its schedule. */
  kept?: string;
  replay: string;
}

const KEYS = ["x", "y", "z"];
const REGISTER_CLIENTS = 4;
const OP_TIMEOUT_MS = 1_500;

export function nemesisUnavailable(): string | null {
  return NetnsLab.unavailable() ?? NetnsLab.partitionsUnavailable();
}

export async function runNemesis(opts: NemesisOptions): Promise<NemesisReport> {
  const log = opts.log ?? (() => {});
  const n = opts.voters ?? 5;
  const faults = opts.faults ?? schedule(opts.seed, opts.durationMs, n, opts.kinds ?? FAULT_KINDS);
  const lab = new NetnsLab(n);
  const disks: SmallDisk[] = [];
  let cluster: TestCluster | null = null;
  try {
    lab.up();
    for (let i = 0; i < n; i++) {
      const disk = mountSmallDisk(64);
      if (!disk) throw new Error("mounting a tmpfs failed (needs root)");
      disks.push(disk);
    }
    const running = new TestCluster(n, {
      voters: n,
      host: (i) => lab.host(i),
      listenAll: true,
      wrap: (id, argv) => lab.wrap(index(id), argv),
      capabilities: () => ["nemesis"],
      slots: () => 2,
      extraToml: '[jobs.nemesis]\ncommand = ["true"]\ntimeout = "30s"\n',
    });
    cluster = running;
    const env = (i: number) => ({
      P2P_DATA_DIR: join((disks[i] as SmallDisk).dir, "data"),
      ...(opts.failpoints ? { P2P_FAILPOINTS: opts.failpoints } : {}),
    });
    const start = (i: number) => running.start(`n${i + 1}`, env(i));
    for (let i = 0; i < n; i++) start(i);
    const port = Number(running.nodes[0]?.address.split(":")[1]);
    const world: World = { lab, cluster: running, disks, port, start, log, killed: new Set() };
    await leaderAmong(
      running,
      running.nodes.map((x) => x.id),
    );

    const clients = new Clients(running, opts.seed);
    const t0 = performance.now();
    const stopAt = t0 + opts.durationMs;
    const loops = [
      ...Array.from({ length: REGISTER_CLIENTS }, (_, c) => clients.register(c, stopAt)),
      clients.work(stopAt),
    ];
    const described: string[] = [];
    for (const f of faults) {
      await Bun.sleep(Math.max(0, t0 + f.at - performance.now()));
      const text = `${Math.round(f.at / 100) / 10}s ${describeFault(f.fault, (i) => `n${i + 1}`)} for ${f.forMs} ms`;
      described.push(text);
      log(text);
      await inject(world, f.fault);
      await Bun.sleep(f.forMs);
      await heal(world);
    }
    await Promise.all(loops);
    await heal(world);

    // Recovered: a leader, the final reads, and every acknowledged item completed.
    await leaderAmong(
      running,
      running.nodes.map((x) => x.id),
    );
    for (const key of KEYS) await clients.finalRead(key);
    const work = await clients.drain(60_000);
    const verdicts: Record<string, Verdict> = {};
    for (const key of KEYS) verdicts[key] = checkRegister(clients.historyOf(key));
    const ok =
      Object.values(verdicts).every((v) => v.ok === true) && work.lost.length === 0 && work.doubled.length === 0;
    const replay = [
      `npm run nemesis -- --seed ${opts.seed} --seconds ${Math.round(opts.durationMs / 1000)} --voters ${n}`,
      opts.kinds ? ` --kinds ${opts.kinds.join(",")}` : "",
      opts.failpoints ? ` --failpoints ${opts.failpoints}` : "",
    ].join("");
    const report: NemesisReport = {
      ok,
      seed: opts.seed,
      faults: described,
      register: { ...clients.counts(), verdicts },
      work,
      replay,
    };
    if (!ok) {
      const kept = join(opts.artifacts, `nemesis-seed-${opts.seed}-${Date.now()}`);
      mkdirSync(kept, { recursive: true });
      writeFileSync(join(kept, "report.json"), JSON.stringify(report, null, 2));
      writeFileSync(join(kept, "history.json"), JSON.stringify(clients.history, null, 1));
      writeFileSync(join(kept, "schedule.json"), JSON.stringify(faults, null, 2));
      writeFileSync(join(kept, "nodes.log"), running.logs());
      report.kept = kept;
    }
    return report;
  } finally {
    for (const d of disks) d.free();
    await cluster?.stop();
    for (const d of disks) d.unmount();
    lab.down();
  }
}

const index = (id: string) => Number(id.slice(1)) - 1;

interface World {
  lab: NetnsLab;
  cluster: TestCluster;
  disks: SmallDisk[];
  port: number;
  start: (i: number) => void;
  log: (line: string) => void;
  killed: Set<number>;
}

async function inject(w: World, f: Fault): Promise<void> {
  const id = (i: number) => `n${i + 1}`;
  switch (f.kind) {
    case "partition":
      for (const a of f.sides[0]) for (const b of f.sides[1]) cutBetween(w.lab, a, b);
      return;
    case "bridge":
      for (const a of f.sides[0]) for (const b of f.sides[1]) cutBetween(w.lab, a, b);
      return;
    case "one-way":
      w.lab.dropRequestsFrom(f.to, f.from, w.port);
      return;
    case "isolate":
      w.lab.cut(f.node);
      return;
    case "kill":
      await w.cluster.kill(id(f.node));
      w.killed.add(f.node);
      return;
    case "pause":
      w.cluster.signal(id(f.node), "SIGSTOP");
      return;
    case "disk-full":
      (w.disks[f.node] as SmallDisk).fill();
      return;
  }
}

function cutBetween(lab: NetnsLab, a: number, b: number): void {
  lab.dropFrom(a, b);
  lab.dropFrom(b, a);
}

async function heal(w: World): Promise<void> {
  w.lab.healAll();
  for (const d of w.disks) d.free();
  for (const node of w.cluster.nodes) node.proc?.kill("SIGCONT");
  for (const i of w.killed) w.start(i);
  w.killed.clear();
}

async function leaderAmong(cluster: TestCluster, ids: string[]): Promise<string> {
  return waitFor(
    async () => {
      for (const id of ids) {
        const e = (await cluster.get(id, "/election").catch(() => null)) as { leader?: { id: string } | null } | null;
        if (e?.leader?.id) return e.leader.id;
      }
      return undefined;
    },
    30_000,
    "a leader",
  );
}

interface Recorded extends Record<string, unknown> {
  key: string;
  op: RegisterOp;
  client: number;
  node: string;
}

/** The clients: each register client picks a key and a node (mostly the leader it last heard of) per operation. */
class Clients {
  readonly history: Recorded[] = [];
  private readonly acked: string[] = [];
  private leaderGuess: string | null = null;
  private readonly random: () => number;

  constructor(
    private readonly cluster: TestCluster,
    seed: number,
  ) {
    this.random = seededRandom(seed ^ 0x5eed);
  }

  private pickNode(): string {
    const nodes = this.cluster.nodes.map((x) => x.id);
    if (this.leaderGuess && this.random() < 0.7) return this.leaderGuess;
    return nodes[Math.floor(this.random() * nodes.length)] as string;
  }

  private async request(node: string, path: string, body?: unknown): Promise<Response | null> {
    const address = this.cluster.node(node).address;
    try {
      const res = await fetch(`http://${address}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: {
          authorization: `Bearer ${this.cluster.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(OP_TIMEOUT_MS),
      });
      if (res.status === 421) {
        const hint = (await res
          .clone()
          .json()
          .catch(() => null)) as { leader?: { id?: string } | null } | null;
        if (hint?.leader?.id) this.leaderGuess = hint.leader.id;
      }
      return res;
    } catch {
      return null;
    }
  }

  async register(client: number, stopAt: number): Promise<void> {
    let seq = 0;
    while (performance.now() < stopAt) {
      const key = KEYS[Math.floor(this.random() * KEYS.length)] as string;
      const node = this.pickNode();
      if (this.random() < 0.5) await this.write(client, key, node, `c${client}.${seq++}`);
      else await this.read(client, key, node);
      await Bun.sleep(this.random() * 20);
    }
  }

  private async write(client: number, key: string, node: string, value: string): Promise<void> {
    const call = performance.now();
    const res = await this.request(node, "/kv", { key, value });
    // A 421 was refused before anything was appended: left out of the history, so a read that saw its value
    // anyway is a violation. Only a 2xx is known to have taken effect; anything else (a 503 from a leader that
    // lost its role after appending, a timeout) may still commit, so its outcome is unknown.
    if (res?.status === 421) return;
    const ret = res?.ok ? performance.now() : Number.POSITIVE_INFINITY;
    this.history.push({ key, client, node, op: { kind: "write", value, call, ret } });
  }

  private async read(client: number, key: string, node: string): Promise<void> {
    const call = performance.now();
    const res = await this.request(node, `/kv?key=${key}&consistency=linearizable`);
    if (!res || (res.status !== 200 && res.status !== 404)) return;
    const body = (await res.json().catch(() => null)) as { value?: unknown } | null;
    const value = res.status === 404 ? null : typeof body?.value === "string" ? body.value : null;
    this.history.push({ key, client, node, op: { kind: "read", value, call, ret: performance.now() } });
  }

  async finalRead(key: string): Promise<void> {
    await waitFor(
      async () => {
        const before = this.history.length;
        await this.read(-1, key, this.pickNode());
        return this.history.length > before;
      },
      30_000,
      `a final read of ${key}`,
    );
  }

  /** Submits items one at a time, each retried with its id until acknowledged. */
  async work(stopAt: number): Promise<void> {
    let k = 0;
    while (performance.now() < stopAt) {
      const id = `nemesis-${k}`;
      const res = await this.request(this.pickNode(), "/work", { id, type: "nemesis", maxAttempts: 20 });
      if (res?.ok) {
        this.acked.push(id);
        k++;
      }
      await Bun.sleep(100 + this.random() * 100);
    }
  }

  /** Waits until every acknowledged item completed; then reads each item's history for doubled completions. */
  async drain(deadlineMs: number): Promise<NemesisReport["work"]> {
    const state = new Map<string, string>();
    const deadline = Date.now() + deadlineMs;
    while (Date.now() < deadline) {
      const pending = this.acked.filter((id) => state.get(id) !== "completed");
      if (pending.length === 0) break;
      for (const id of pending) {
        const res = await this.request(this.pickNode(), `/work/${id}`);
        const body = res?.ok ? ((await res.json().catch(() => null)) as { state?: string } | null) : null;
        if (body?.state) state.set(id, body.state);
      }
      await Bun.sleep(250);
    }
    const doubled: string[] = [];
    for (const id of this.acked) {
      const res = await this.request(this.pickNode(), `/work/history?item=${id}&limit=1000`);
      const body = res?.ok ? ((await res.json()) as { history: Array<{ to: string }> }) : { history: [] };
      if (body.history.filter((h) => h.to === "completed").length > 1) doubled.push(id);
    }
    const lost = this.acked.filter((id) => state.get(id) !== "completed");
    return { acked: this.acked.length, completed: this.acked.length - lost.length, lost, doubled };
  }

  /**
   * One key's operations for the checker. A write of unknown outcome that no read saw is left out: placed after
   * everything, it explains the same history, so keeping it only widens the search.
   */
  historyOf(key: string): RegisterOp[] {
    const ops = this.history.filter((h) => h.key === key).map((h) => h.op);
    const seen = new Set(ops.flatMap((o) => (o.kind === "read" && o.value !== null ? [o.value] : [])));
    return ops.filter((o) => o.kind === "read" || Number.isFinite(o.ret) || seen.has(o.value));
  }

  counts(): { writes: number; reads: number; unknown: number } {
    const ops = this.history.map((h) => h.op);
    return {
      writes: ops.filter((o) => o.kind === "write" && Number.isFinite(o.ret)).length,
      reads: ops.filter((o) => o.kind === "read").length,
      unknown: ops.filter((o) => !Number.isFinite(o.ret)).length,
    };
  }
}
