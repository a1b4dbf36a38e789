import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadNodeConfig, type NodeConfig } from "../../src/config/load.ts";
import { MAX_COUNTER } from "../../src/net/bounds.ts";
import { ROUTES } from "../../src/net/route-table.ts";
import { signRequest } from "../../src/net/signing.ts";
import { type RunningNode, startNode } from "../../src/node/node.ts";
import { createLogger } from "../../src/observability/log.ts";
import { freePort } from "./free-port.ts";

/**
 * Defect: one signed Raft message with term 1e308 moved a voter to a term where term + 1 === term. Over
 * HTTP, with a real signature from a known peer, it is now a 422 naming the field and the term stays.
 */
let dir: string;
let config: NodeConfig;
let node: RunningNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "p2p-raft-term-"));
  const path = join(dir, "cluster.toml");
  writeFileSync(
    path,
    `[cluster]\nname = "raft-term"\ndata_dir = "data/{id}"\n\n[[nodes]]\nid = "solo"\naddress = "127.0.0.1:${freePort()}"\nvoter = true\n\n[[nodes]]\nid = "x1"\naddress = "127.0.0.1:9"\n`,
  );
  writeFileSync(join(dir, "cluster.secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
  writeFileSync(join(dir, "operator.token"), randomBytes(24).toString("hex"), { mode: 0o600 });
  config = loadNodeConfig(path);
  node = await startNode(config, createLogger("error"));
});

afterAll(async () => {
  await node?.leave("test");
  rmSync(dir, { recursive: true, force: true });
});

async function election(): Promise<{ term: number; role: string }> {
  const response = await fetch(`${node.url}${ROUTES.election.path}`, {
    headers: { authorization: `Bearer ${config.token}` },
  });
  return (await response.json()) as { term: number; role: string };
}

async function postRaft(body: string): Promise<Response> {
  const headers = signRequest({
    secret: config.secret,
    nodeId: "x1",
    method: "POST",
    pathWithQuery: ROUTES.peerRaft.path,
    body,
    now: Date.now(),
    to: config.nodeId,
  });
  return fetch(`${node.url}${ROUTES.peerRaft.path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}

test("a signed append with term 1e308 is a 422 naming the term, and the node's term does not move", async () => {
  const deadline = Date.now() + 10_000;
  while ((await election()).role !== "leader") {
    if (Date.now() > deadline) throw new Error("the single voter never led");
    await Bun.sleep(20);
  }
  const before = (await election()).term;
  for (const term of ["1e308", "9007199254740993", "-1", "1.5"]) {
    const body = `{"messages":[{"type":"append","from":"x1","term":${term},"prevLogIndex":0,"prevLogTerm":0,"entries":[],"leaderCommit":0,"sentAt":1}]}`;
    const response = await postRaft(body);
    expect(response.status).toBe(422);
    const error = (await response.json()) as { error: string; field?: string };
    expect(error).toMatchObject({
      error: "validation",
      field: "body.messages[0].term",
      expected: `an integer from 0 to ${MAX_COUNTER}`,
    });
  }
  const after = await election();
  expect(after.term).toBe(before);
  expect(after.role).toBe("leader");
});
