import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireBinary, TestCluster, waitFor } from "./harness.ts";

/**
 * An operator mistake that used to be silent: a node started with another cluster.secret. Both sides now say
 * so in their logs, naming the peer, and `GET /status` lists the failing peer.
 */
let cluster: TestCluster;

beforeAll(() => {
  requireBinary();
  cluster = new TestCluster(3, { voters: 2 });
  const wrong = join(cluster.dir, "wrong-secret");
  mkdirSync(wrong);
  writeFileSync(join(wrong, "cluster.secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
  copyFileSync(join(cluster.dir, "operator.token"), join(wrong, "operator.token"));
  // The same cluster file beside another secret (its data dirs land beside it too).
  copyFileSync(cluster.configPath, join(wrong, "cluster.toml"));
  cluster.start("n1");
  cluster.start("n2");
  cluster.start("n3", {}, join(wrong, "cluster.toml"));
});

afterAll(async () => {
  if (cluster) await cluster.stop();
});

test(
  "a node with the wrong secret is named in both nodes' logs and in status",
  () =>
    cluster.withLogs(async () => {
      const inbound = await waitFor(
        async () => (await cluster.status("n1")).signatureFailures.inbound.find((f) => f.peer === "n3"),
        15_000,
        "n1's status lists n3's failing signatures",
      );
      expect(inbound.reason).toBe("bad signature");
      expect(inbound.count).toBeGreaterThan(0);
      const outbound = await waitFor(
        async () => (await cluster.status("n3")).signatureFailures.outbound.find((f) => f.peer === "n1"),
        15_000,
        "n3's status lists n1 refusing its signature",
      );
      expect(outbound.reason).toContain("bad signature");
      const log = (id: string) => readFileSync(cluster.node(id).logFile, "utf8");
      expect(log("n1")).toContain("signed request from n3");
      expect(log("n1")).toContain("is its cluster.secret the same as ours?");
      expect(log("n3")).toContain("n1 (");
      expect(log("n3")).toContain("refuses our signature");
      // n1 and n2 share a secret: neither lists the other.
      expect((await cluster.status("n1")).signatureFailures.inbound.map((f) => f.peer)).toEqual(["n3"]);
    }),
  40_000,
);
