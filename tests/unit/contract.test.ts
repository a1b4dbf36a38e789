import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { type ApiRoute, Client, type InputArg, type ResponseOf } from "../../src/client/client.ts";
import { loadNodeConfig, type NodeConfig } from "../../src/config/load.ts";
import { CallError, call } from "../../src/net/client.ts";
import { errorBodySchema } from "../../src/net/errors.ts";
import { openApiDocument } from "../../src/net/openapi.ts";
import { ROUTES, type RouteSpec } from "../../src/net/route-table.ts";
import { type RunningNode, startNode } from "../../src/node/node.ts";
import { createLogger } from "../../src/observability/log.ts";
import { demoRunToml } from "../integration/demo-run.ts";
import { waitFor } from "../integration/harness.ts";
import { freePort } from "./free-port.ts";

/**
 * The contract between the handlers and the route table's response schemas, on one real node in this process
 * with a training run configured (it runs no jobs: 0 slots). Every call goes through the typed client, which
 * checks each answer against its route's schema; here each answer must also carry no field the schema leaves
 * out (parsing it changes nothing), so the OpenAPI document describes all of it.
 */
let dir: string;
let config: NodeConfig;
let node: RunningNode;
let api: Client;
const called = new Set<string>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "p2p-contract-"));
  const path = join(dir, "cluster.toml");
  writeFileSync(
    path,
    `[cluster]\nname = "contract"\ndata_dir = "data/{id}"\n\n[jobs.probe]\ncommand = ["true"]\n${demoRunToml()}\n[[nodes]]\nid = "solo"\naddress = "127.0.0.1:${freePort()}"\nvoter = true\ncapabilities = ["probe", "selfplay", "train", "match", "bootstrap"]\nslots = 0\n`,
  );
  writeFileSync(join(dir, "cluster.secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
  writeFileSync(join(dir, "operator.token"), randomBytes(24).toString("hex"), { mode: 0o600 });
  config = loadNodeConfig(path);
  mkdirSync(join(dir, ".data/solo/models"), { recursive: true });
  node = await startNode(config, createLogger("error"));
  api = new Client({ url: node.url, token: config.token });
  await waitFor(
    async () => (await api.call("runs").catch(() => null))?.runs.length === 1,
    10_000,
    "the run is configured",
  );
}, 20_000);

afterAll(async () => {
  await node?.leave("test");
  rmSync(dir, { recursive: true, force: true });
});

/** Calls a route through the typed client and checks the answer has no field its schema does not describe. */
async function exact<N extends ApiRoute>(name: N, ...input: InputArg<N>): Promise<ResponseOf<N>> {
  const answer = await api.call(name, ...input);
  const spec: RouteSpec = ROUTES[name];
  if (spec.response) expect(v.parse(spec.response, answer) as unknown).toEqual(answer);
  called.add(name);
  return answer;
}

/** A refusal in the one error shape, with its status. */
async function refusal(
  promise: Promise<unknown>,
): Promise<{ status?: number; body: v.InferOutput<typeof errorBodySchema> }> {
  const e = await promise.then(
    () => null,
    (error: unknown) => error,
  );
  if (!(e instanceof CallError)) throw new Error(`expected an HTTP error, got ${String(e)}`);
  return { status: e.status, body: v.parse(errorBodySchema, e.body) };
}

describe("every handler answers as its route's schema says", () => {
  test("the node's own views", async () => {
    expect((await exact("health")).id).toBe("solo");
    expect(await exact("openapi")).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
    // Open like /health: tools read it without the token.
    expect((await fetch(`${node.url}/openapi.json`)).status).toBe(200);
    expect((await fetch(`${node.url}/status`)).status).toBe(401);
    expect((await exact("status")).node.role).toBe("leader");
    expect((await exact("traces", { query: { limit: 20 } })).traces.length).toBeGreaterThan(0);
    expect((await exact("jobs")).jobs).toEqual([]);
    expect((await exact("election")).role).toBe("leader");
    expect(await api.call("metrics")).toContain("p2p_");
    called.add("metrics");
  });

  test("the register", async () => {
    const written = await exact("kvSet", { body: { key: "k", value: { a: 1 } } });
    const read = await exact("kvGet", { query: { key: "k" } });
    expect(read).toMatchObject({ key: "k", value: { a: 1 }, index: written.index, stale: false });
  });

  test("the work queue", async () => {
    const added = await exact("workAdd", { body: { id: "c-1", type: "probe", config: { games: 1 } } });
    expect(added.item.whyPending?.nodes[0]?.reasons.length).toBeGreaterThan(0);
    expect((await exact("workBatch", { body: { items: [{ id: "c-2", type: "probe" }] } })).added).toEqual(["c-2"]);
    expect((await exact("workList", { query: { type: "probe" } })).items.map((i) => i.id)).toContain("c-2");
    expect((await exact("workStatus")).byState.pending).toBeGreaterThan(0);
    await exact("workPopulator");
    expect((await exact("workHistory", { query: { item: "c-1" } })).history[0]?.to).toBe("pending");
    expect((await exact("workNode", { params: { id: "solo" } })).items).toEqual([]);
    expect((await exact("workGet", { params: { id: "c-1" } })).state).toBe("pending");
    expect((await exact("workCancel", { params: { id: "c-1" }, body: {} })).state).toBe("cancelled");
  });

  test("the training run", async () => {
    expect((await exact("runs")).runs[0]?.name).toBe("c4");
    const run = await exact("run", { params: { name: "c4" } });
    expect(run.stage).toBe("bootstrapping");
    await exact("runModels", { params: { name: "c4" } });
    await exact("runElo", { params: { name: "c4" } });
    expect((await exact("runAnalytics", { params: { name: "c4" } })).run).toBe("c4");
    expect(
      (await exact("runHistory", { params: { name: "c4" }, query: { limit: 10 } })).history.length,
    ).toBeGreaterThan(0);
    await exact("runAbtests", { params: { name: "c4" } });
    await exact("runTournaments", { params: { name: "c4" } });
    expect((await exact("runPause", { params: { name: "c4" }, body: { reason: "contract" } })).run.context.paused).toBe(
      true,
    );
    expect((await exact("runResume", { params: { name: "c4" }, body: {} })).run.context.paused).toBe(false);
  });

  test("data sync", async () => {
    const status = await exact("syncStatus");
    expect(status.categories.map((c) => c.name).sort()).toEqual(["games", "models"]);
    const all = await exact("manifest");
    expect("status" in all && all.status.length).toBe(2);
    const one = await exact("manifest", { query: { category: "models" } });
    expect("category" in one && one.category).toBe("models");
    expect((await exact("syncStart", { body: { category: "models" } })).sessions).toEqual([]);
    // A single node fetches nothing, so a session's own view is checked through syncStatus's shared schema only.
    expect((await refusal(api.call("syncSession", { params: { id: "none" } }))).status).toBe(404);
    called.add("syncSession");
  });

  test("peer routes answer as their schemas say (signed calls)", async () => {
    const peer = { kind: "peer", secret: config.secret, nodeId: "solo" } as const;
    const manifest = await call(node.url, ROUTES.peerManifest, peer, {
      params: { category: "models" },
      timeoutMs: 5_000,
      to: "solo",
    });
    expect(v.parse(ROUTES.peerManifest.response, manifest)).toEqual(manifest as never);
  });

  test("domain errors keep the one error shape, with the status that says what to do", async () => {
    expect(await refusal(api.call("run", { params: { name: "nope" } }))).toMatchObject({
      status: 404,
      body: { error: "no_such_run" },
    });
    expect(await refusal(api.call("workGet", { params: { id: "nope" } }))).toMatchObject({
      status: 404,
      body: { error: "no_such_item" },
    });
    const conflict = await refusal(api.call("workAdd", { body: { id: "c-2", type: "probe", priority: 9 } }));
    expect(conflict).toMatchObject({ status: 409, body: { error: "id_conflict", field: "body.id" } });
    const batch = await refusal(
      api.call("workBatch", {
        body: {
          items: [
            { id: "c-3", type: "probe" },
            { id: "c-2", type: "probe", priority: 9 },
          ],
        },
      }),
    );
    expect(batch).toMatchObject({ status: 409, body: { field: "body.items[1].id" } });
  });

  test("drain (last: the node stops claiming)", async () => {
    expect(await exact("drain", { body: { reason: "maintenance" } })).toEqual({
      draining: true,
      running: 0,
      reason: "maintenance",
    });
    expect(await exact("undrain", { body: {} })).toEqual({ draining: false, running: 0, reason: null });
  });

  test("the calls above cover every GET route an operator may call", () => {
    const gets = Object.entries(ROUTES as Record<string, RouteSpec>)
      .filter(([, spec]) => spec.method === "GET" && spec.auth !== "peer")
      .map(([name]) => name);
    expect(gets.filter((name) => !called.has(name))).toEqual([]);
  });
});
