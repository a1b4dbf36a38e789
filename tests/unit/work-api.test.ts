import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadNodeConfig, type NodeConfig } from "../../src/config/load.ts";
import { type RunningNode, startNode } from "../../src/node/node.ts";
import { createLogger } from "../../src/observability/log.ts";
import { waitFor } from "../integration/harness.ts";
import { freePort } from "./free-port.ts";

/** The work and kv API of one real node, in this process, that runs no jobs (0 slots). */
let dir: string;
let config: NodeConfig;
let node: RunningNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "p2p-work-api-"));
  const path = join(dir, "cluster.toml");
  writeFileSync(
    path,
    `[cluster]\nname = "work-api"\ndata_dir = "data/{id}"\n\n[jobs.selfplay]\ncommand = ["true"]\n\n[[nodes]]\nid = "solo"\naddress = "127.0.0.1:${freePort()}"\nvoter = true\ncapabilities = ["selfplay"]\nslots = 0\n`,
  );
  writeFileSync(join(dir, "cluster.secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
  writeFileSync(join(dir, "operator.token"), randomBytes(24).toString("hex"), { mode: 0o600 });
  config = loadNodeConfig(path);
  node = await startNode(config, createLogger("error"));
  // Leading, and its own resources sampled (the queue takes a type once some node is known to run it).
  await waitFor(async () => (await post("/work", { id: "probe", type: "selfplay" })).ok, 10_000, "the node takes work");
});

afterAll(async () => {
  await node?.leave("test");
  rmSync(dir, { recursive: true, force: true });
});

const post = (path: string, body: unknown) =>
  fetch(`${node.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${config.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

const get = async (path: string) =>
  (await fetch(`${node.url}${path}`, { headers: { authorization: `Bearer ${config.token}` } })).json();

/** `[[[...]]]`, `levels` arrays deep. */
const deep = (levels: number): unknown => JSON.parse(`${"[".repeat(levels)}${"]".repeat(levels)}`);

describe("POST /work is idempotent by the client's id", () => {
  test("the same submission twice: one item, the second answer says existing and carries the item", async () => {
    const body = { id: "retry-1", type: "selfplay", config: { games: 3 } };
    const first = await post("/work", body);
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ id: "retry-1", existing: false, item: { state: "pending" } });
    const second = await post("/work", body);
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ id: "retry-1", existing: true, item: { config: { games: 3 } } });
    const { history } = (await get("/work/history?item=retry-1")) as { history: unknown[] };
    expect(history).toHaveLength(1);
  });

  test("the same id with other content is a 409 naming the id and what differs", async () => {
    await post("/work", { id: "retry-2", type: "selfplay" });
    const clash = await post("/work", { id: "retry-2", type: "selfplay", config: { games: 9 } });
    expect(clash.status).toBe(409);
    expect(await clash.json()).toMatchObject({
      error: "id_conflict",
      field: "body.id",
      message: expect.stringContaining('"retry-2"'),
    });
  });
});

describe("bad submissions are 422s naming the field, never 500s", () => {
  test("a config nested past 32 levels", async () => {
    const response = await post("/work", { type: "selfplay", config: { a: deep(40) } });
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({
      field: "body.config",
      expected: "JSON nested at most 32 levels deep",
    });
  });

  test("a kv value nested past 32 levels", async () => {
    const response = await post("/kv", { key: "deep", value: deep(40) });
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({ field: "body.value" });
  });

  test("diskGb 1e308", async () => {
    const response = await post("/work", { type: "selfplay", requirements: { diskGb: 1e308 } });
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({ field: "body.requirements.diskGb" });
  });

  test("as much disk as the schema allows, more than this node has: refused with the reason", async () => {
    const response = await post("/work", { type: "selfplay", requirements: { diskGb: 1_000_000 } });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { field: string; message: string };
    expect(body.field).toBe("body.requirements");
    expect(body.message).toMatch(/^no live node can ever run the item: solo: needs 1000000 GB disk, has [\d.]+ GB$/);
    const batch = await post("/work/batch", {
      items: [{ type: "selfplay" }, { type: "selfplay", dependsOn: ["nope"] }],
    });
    expect(await batch.json()).toMatchObject({ field: "body.items[1].dependsOn" });
  });
});
