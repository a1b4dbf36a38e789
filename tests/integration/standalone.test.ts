import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { BIN, requireBinary, waitFor } from "./harness.ts";

/** The binary alone in an empty folder: `init`, then `start`; and a broken config refused before binding. */
describe("the binary on its own", () => {
  const dir = mkdtempSync(join(tmpdir(), "p2p-alone-"));
  const port = 40_000 + Math.floor(Math.random() * 10_000);
  let node: Subprocess | null = null;

  afterAll(async () => {
    node?.kill("SIGKILL");
    await node?.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  test("copied into an empty folder, it initialises and serves", async () => {
    requireBinary();
    const bin = join(dir, "p2p-orchestrator");
    copyFileSync(BIN, bin);
    const init = Bun.spawnSync([bin, "init", "--nodes", "1", "--port", String(port - 1)], { cwd: dir });
    expect(init.exitCode).toBe(0);
    node = Bun.spawn([bin, "start", "--node", "n1"], { cwd: dir, stdout: "ignore", stderr: "pipe" });
    const health = await waitFor(
      () => fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(500) }).then((r) => r.json()),
      10_000,
      "GET /health answers",
    );
    expect(health).toMatchObject({ ok: true, id: "n1" });
    const token = readFileSync(join(dir, "operator.token"), "utf8").trim();
    const status = Bun.spawnSync([bin, "status", "--json"], { cwd: dir });
    expect(status.exitCode).toBe(0);
    expect(JSON.parse(status.stdout.toString()).node.id).toBe("n1");
    const unauthorised = await fetch(`http://127.0.0.1:${port}/status`);
    expect(unauthorised.status).toBe(401);
    const authorised = await fetch(`http://127.0.0.1:${port}/status`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(authorised.status).toBe(200);
  }, 20_000);

  test("a broken config exits with code 2 and names the file, the key and the expectation", () => {
    const broken = join(dir, "broken.toml");
    const brokenPort = port + 7;
    writeFileSync(
      broken,
      `[cluster]\nname = "x"\n[[nodes]]\nid = "n1"\naddress = "127.0.0.1:${brokenPort}"\nvoter = "yes"\n`,
    );
    const run = Bun.spawnSync([join(dir, "p2p-orchestrator"), "start", "--config", broken, "--node", "n1"], {
      cwd: dir,
    });
    expect(run.exitCode).toBe(2);
    const stderr = run.stderr.toString();
    expect(stderr).toContain(broken);
    expect(stderr).toContain("nodes[0].voter");
    expect(stderr).toContain("boolean");
  });
});
