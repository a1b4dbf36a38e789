import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BIN, requireBinary, TestCluster, waitFor } from "./harness.ts";

interface SessionView {
  id: string;
  category: string;
  path: string;
  state: string;
  bytesDone: number;
  bytesTotal: number;
  attempts: number;
  lastError: string | null;
}

interface SyncStatusView {
  active: SessionView[];
  recent: SessionView[];
}

interface TraceRow {
  instance: string;
  from: string | null;
  to: string;
  event: string;
  cause: string | null;
}

const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher("sha256").update(bytes).digest("hex");

/**
 * Four nodes: n4 trains (it has the `training` capability), so games go to it; models go to every
 * node through a swarm. The receiver's transfers are slowed so one can be killed in the middle.
 */
describe("data sync between four nodes", () => {
  let cluster: TestCluster;
  const root = (node: string, category: string) => join(cluster.dir, "data", node, category);
  const put = (node: string, category: string, path: string, bytes: Uint8Array) => {
    const file = join(root(node, category), path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, bytes);
    return file;
  };
  const holds = (node: string, category: string, path: string, expected: string) => {
    const file = join(root(node, category), path);
    return existsSync(file) && sha256(readFileSync(file)) === expected;
  };
  const syncStatus = async (node: string) => (await cluster.get(node, "/sync/status")) as SyncStatusView;
  const metric = async (node: string, name: string, labels: string) => {
    const response = await fetch(`http://${cluster.node(node).address}/metrics`, {
      headers: { authorization: `Bearer ${cluster.token}` },
    });
    const line = (await response.text()).split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
    return line ? Number(line.split(" ").pop()) : 0;
  };

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(4, {
      voters: 3,
      capabilities: (i) => (i === 3 ? ["selfplay", "training"] : ["selfplay"]),
      extraToml: [
        "[sync]",
        'download_rate = "40MB/s"',
        'scan_interval = "1s"',
        "",
        "[data.games]",
        'path = "data/{id}/games"',
        'globs = ["**/*.jsonl", "**/*.bin"]',
        'to = ["training"]',
        "",
        "[data.models]",
        'path = "data/{id}/models"',
        'globs = ["**/*.pt"]',
        'to = "all"',
        "swarm = true",
        'stagger = "1s"',
        "",
      ].join("\n"),
    });
    // n1 serves one corrupt piece: the receiver must reject it and fetch it again.
    cluster.start("n1", { P2P_FAILPOINTS: "sync.corrupt-served-piece=1" });
    for (const id of ["n2", "n3", "n4"]) cluster.start(id);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test(
    "games made on two nodes reach the trainer (and only the trainer); a corrupt piece is rejected and fetched again",
    async () =>
      cluster.withLogs(async () => {
        const a = new Uint8Array(randomBytes(9 * 1024 * 1024 + 17));
        const b = new TextEncoder().encode(`${JSON.stringify({ moves: [1, 2, 3] })}\n`.repeat(1000));
        put("n1", "games", "run1/a.bin", a);
        put("n2", "games", "run2/b.jsonl", b);
        await waitFor(
          () => holds("n4", "games", "run1/a.bin", sha256(a)) && holds("n4", "games", "run2/b.jsonl", sha256(b)),
          30_000,
          "both game files on the trainer n4",
        );
        expect(existsSync(join(root("n3", "games"), "run1/a.bin"))).toBe(false);
        expect(existsSync(join(root("n1", "games"), "run2/b.jsonl"))).toBe(false);
        // The corrupt piece shows in the session's traces: rejected, fetched again, and the whole file verified.
        const { recent } = await syncStatus("n4");
        const session = recent.find((s) => s.path === "run1/a.bin");
        expect(session?.state).toBe("done");
        const { traces } = (await cluster.get("n4", `/traces?machine=sync&instance=${session?.id}`)) as {
          traces: TraceRow[];
        };
        const causes = traces.map((t) => `${t.to}: ${t.cause}`).join("\n");
        expect(causes).toMatch(/verifying: all \d+ pieces verified.*after [1-9]\d* rejected/);
        expect(traces.at(-1)?.to).toBe("done");
      }),
    60_000,
  );

  test(
    "a model put on one node reaches every node",
    async () =>
      cluster.withLogs(async () => {
        const model = new Uint8Array(randomBytes(6 * 1024 * 1024));
        put("n2", "models", "candidate_sq8.pt", model);
        await waitFor(
          () => ["n1", "n3", "n4"].every((n) => holds(n, "models", "candidate_sq8.pt", sha256(model))),
          30_000,
          "the model on every node",
        );
        // The CLI: "sync now" on a node that already has everything ends at once; "sync status" lists the categories.
        const cli = async (...args: string[]) => {
          const url = `http://${cluster.node("n3").address}`;
          const proc = Bun.spawn([BIN, "sync", ...args, "--url", url, "--token", cluster.token], { stdout: "pipe" });
          const out = await new Response(proc.stdout).text();
          expect(await proc.exited).toBe(0);
          return out;
        };
        expect(await cli("now")).toContain("0 transfer(s) running");
        const status = await cli("status");
        expect(status).toMatch(/models\s+yes\s+yes\s+1\s/);
        expect(status).toMatch(/games\s+no\s+no\s/);
      }),
    60_000,
  );

  test(
    "a receiver killed mid-transfer resumes from its partial file instead of starting over",
    async () =>
      cluster.withLogs(async () => {
        const size = 96 * 1024 * 1024;
        const big = new Uint8Array(randomBytes(size));
        put("n3", "games", "run3/big.bin", big);
        const progress = await waitFor(
          async () => {
            const s = (await syncStatus("n4")).active.find((x) => x.path === "run3/big.bin");
            return s && s.bytesDone > size / 4 && s.bytesDone < (size * 3) / 4 ? s.bytesDone : undefined;
          },
          30_000,
          "n4 a quarter of the way through big.bin",
        );
        await cluster.kill("n4");
        cluster.start("n4");
        await waitFor(() => holds("n4", "games", "run3/big.bin", sha256(big)), 60_000, "big.bin on n4 after restart");
        // After the restart n4 received only what it lacked, not the whole file again.
        const received = await metric("n4", "p2p_sync_bytes_total", 'direction="received"');
        expect(received).toBeGreaterThan(0);
        expect(received).toBeLessThan(size - progress / 2);
        const session = (await syncStatus("n4")).recent.find((s) => s.path === "run3/big.bin");
        const { traces } = (await cluster.get("n4", `/traces?machine=sync&instance=${session?.id}`)) as {
          traces: TraceRow[];
        };
        expect(traces.some((t) => /resum/i.test(`${t.cause}`))).toBe(true);
      }),
    120_000,
  );
});
