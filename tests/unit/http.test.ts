import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadNodeConfig, type NodeConfig } from "../../src/config/load.ts";
import { ROUTES, type RouteName } from "../../src/net/route-table.ts";
import { signRequest } from "../../src/net/signing.ts";
import { type RunningNode, startNode } from "../../src/node/node.ts";
import { createLogger } from "../../src/observability/log.ts";

/** One real node, in this process, on a free loopback port. */
let dir: string;
let config: NodeConfig;
let node: RunningNode;
let base: string;
/** A model file in the node's one data category: served to peers by content hash. */
const MODEL_BYTES = new Uint8Array(randomBytes(5 * 1024 * 1024 + 3));
const MODEL_SHA = new Bun.CryptoHasher("sha256").update(MODEL_BYTES).digest("hex");

function freePort(): number {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = probe.port;
  void probe.stop(true);
  if (port === undefined) throw new Error("no port");
  return port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "p2p-http-test-"));
  const path = join(dir, "cluster.toml");
  writeFileSync(
    path,
    `[cluster]\nname = "http-test"\ndata_dir = "data/{id}"\n\n[work]\nsoft_limit = 2\nhard_limit = 3\n\n[jobs.export]\ncommand = ["true"]\n\n[data.models]\npath = "models"\nglobs = ["*.pt"]\n\n[[nodes]]\nid = "solo"\naddress = "127.0.0.1:${freePort()}"\nvoter = true\ncapabilities = ["export"]\nslots = 0\n\n[[nodes]]\nid = "x1"\naddress = "127.0.0.1:9"\n`,
  );
  mkdirSync(join(dir, "models"));
  writeFileSync(join(dir, "models", "m.pt"), MODEL_BYTES);
  // Older than the scan's settle window, so the first scan indexes it.
  utimesSync(join(dir, "models", "m.pt"), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  writeFileSync(join(dir, "cluster.secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
  writeFileSync(join(dir, "operator.token"), randomBytes(24).toString("hex"), { mode: 0o600 });
  config = loadNodeConfig(path);
  node = await startNode(config, createLogger("error"));
  base = node.url;
});

afterAll(async () => {
  await node?.leave("test");
  rmSync(dir, { recursive: true, force: true });
});

// ---- request helpers ------------------------------------------------------------------------------

const auth = () => ({ authorization: `Bearer ${config.token}` });

async function get(path: string, headers: Record<string, string> = auth()): Promise<Response> {
  return fetch(`${base}${path}`, { headers });
}

async function postJson(path: string, body: string, headers: Record<string, string> = auth()): Promise<Response> {
  return fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
}

/** A peer request signed the way the node's own client signs it. */
function signed(
  path: string,
  body: string,
  opts: { nodeId?: string; secret?: string; now?: number } = {},
): { headers: Record<string, string>; body: string; path: string } {
  const headers = signRequest({
    secret: opts.secret ?? config.secret,
    nodeId: opts.nodeId ?? "x1",
    method: "POST",
    pathWithQuery: path,
    body,
    now: opts.now ?? Date.now(),
    to: config.nodeId,
  });
  return { headers: { "content-type": "application/json", ...headers }, body, path };
}

/** A signed GET, as a peer fetching a manifest or a file range sends it. */
async function signedGet(path: string, headers: Record<string, string> = {}): Promise<Response> {
  const signature = signRequest({
    secret: config.secret,
    nodeId: "x1",
    method: "GET",
    pathWithQuery: path,
    body: "",
    now: Date.now(),
    to: config.nodeId,
  });
  return fetch(`${base}${path}`, { headers: { ...signature, ...headers } });
}

async function send(req: { headers: Record<string, string>; body: string; path: string }): Promise<Response> {
  return fetch(`${base}${req.path}`, { method: "POST", headers: req.headers, body: req.body });
}

/** Repeats a request until it answers `status` (the node indexes its files just after it starts). */
async function waitForStatus(request: () => Promise<Response>, status: number): Promise<Response> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const response = await request();
    if (response.status === status || Date.now() > deadline) return response;
    await Bun.sleep(20);
  }
}

const ping = (from = "x1", seq: unknown = 1) =>
  JSON.stringify({ messages: [{ type: "ping", from, seq, updates: [] }] });

type ErrorJson = { error: string; message: string; field?: string; expected?: string; found?: string };

async function json<T = ErrorJson>(response: Response): Promise<T> {
  expect(response.headers.get("content-type") ?? "").toContain("application/json");
  return (await response.json()) as T;
}

// ---- tests ----------------------------------------------------------------------------------------

describe("open and operator routes", () => {
  test("GET /health needs no token", async () => {
    const response = await get("/health", {});
    expect(response.status).toBe(200);
    const body = await json<{ ok: boolean; id: string; version: string }>(response);
    expect(body.ok).toBe(true);
    expect(body.id).toBe("solo");
    expect(typeof body.version).toBe("string");
  });

  test("GET /status without a token is 401 JSON", async () => {
    const response = await get("/status", {});
    expect(response.status).toBe(401);
    const body = await json(response);
    expect(body.error).toBe("unauthorized");
    expect(body.message).toContain("missing bearer token");
  });

  test("GET /status with a wrong token is 401", async () => {
    for (const token of ["wrong", `${config.token}x`, config.token.slice(0, -1)]) {
      const response = await get("/status", { authorization: `Bearer ${token}` });
      expect(response.status).toBe(401);
      expect((await json(response)).message).toContain("wrong bearer token");
    }
  });

  test("GET /status with the token has the documented shape", async () => {
    const response = await get("/status");
    expect(response.status).toBe(200);
    const body = await json<{ node: Record<string, unknown>; peers: unknown[] }>(response);
    expect(body.node.id).toBe("solo");
    expect(["follower", "pre-candidate", "candidate", "leader"]).toContain(body.node.role as string);
    expect(typeof body.node.version).toBe("string");
    expect(body.node.address).toBe(config.address);
    expect(body.node.cluster).toBe("http-test");
    expect(body.node.incarnation).toBe(1);
    expect(body.peers).toEqual([]);
  });

  test("GET /metrics is Prometheus text with p2p_peers", async () => {
    const response = await get("/metrics");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type") ?? "").toStartWith("text/plain");
    const text = await response.text();
    expect(text).toContain("# TYPE p2p_peers gauge");
    const peerLines = text.split("\n").filter((l) => l.startsWith("p2p_peers{"));
    expect(peerLines.sort()).toEqual([
      'p2p_peers{state="alive"} 0',
      'p2p_peers{state="dead"} 0',
      'p2p_peers{state="left"} 0',
      'p2p_peers{state="suspect"} 0',
    ]);
  });

  test("GET /traces returns {traces: [...]}", async () => {
    const response = await get("/traces?limit=5");
    expect(response.status).toBe(200);
    const body = await json<{ traces: unknown[] }>(response);
    expect(Array.isArray(body.traces)).toBe(true);
    expect(body.traces.length).toBeLessThanOrEqual(5);
  });

  test("an unknown path is a JSON 404 (with the token) and 401 without", async () => {
    const response = await get("/nope");
    expect(response.status).toBe(404);
    expect((await json(response)).error).toBe("not_found");
    expect((await get("/nope", {})).status).toBe(401);
  });
});

describe("route-table contract: the server serves every route the table lists", () => {
  const names = Object.keys(ROUTES) as RouteName[];

  test("the table lists the routes this test knows about", () => {
    expect([...names].sort() as string[]).toEqual(
      [
        "drain",
        "election",
        "electionStepDown",
        "electionTransfer",
        "health",
        "jobs",
        "kvGet",
        "kvSet",
        "leave",
        "manifest",
        "metrics",
        "openapi",
        "peerFile",
        "peerFilePieces",
        "peerManifest",
        "peerRaft",
        "peerRaftSnapshot",
        "peerRelay",
        "peerSwim",
        "status",
        "syncSession",
        "syncStart",
        "syncStatus",
        "traces",
        "undrain",
        "voters",
        "workAdd",
        "workBatch",
        "workCancel",
        "workGet",
        "workHistory",
        "workList",
        "workNode",
        "workPopulator",
        "workStatus",
        "peerWorkClaim",
        "peerWorkComplete",
        "peerWorkFail",
        "peerWorkHeartbeat",
        "peerWorkStart",
        "runs",
        "run",
        "runModels",
        "runElo",
        "runAnalytics",
        "runAbtests",
        "runAbtestStart",
        "runTournaments",
        "runTournamentStart",
        "evaluationCancel",
        "runHistory",
        "runPause",
        "runResume",
        "runPromote",
        "runRollback",
      ].sort(),
    );
  });

  beforeAll(async () => {
    // A single voter elects itself once its election timeout passes.
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const view = await json<{ role: string }>(await get(ROUTES.election.path));
      if (view.role === "leader") return;
      await Bun.sleep(20);
    }
    throw new Error("the single voter did not become leader within 5 s");
  });

  for (const name of names) {
    const spec = ROUTES[name];
    test(`${name}: ${spec.method} ${spec.path} is served`, async () => {
      let response: Response;
      if (name === "leave") {
        // A valid body would stop the node: send an invalid one, which only a served route can reject with 422.
        response = await postJson(spec.path, JSON.stringify({ reason: 5 }));
        expect(response.status).toBe(422);
        expect((await json(response)).field).toBe("body.reason");
      } else if (name === "peerRaft") {
        // From a node that is not a voter here: served, and ignored.
        response = await send(
          signed(spec.path, JSON.stringify({ messages: [{ type: "timeout-now", from: "x1", term: 0 }] })),
        );
        expect(response.status).toBe(200);
        expect((await json<{ messages: unknown[] }>(response)).messages).toEqual([]);
      } else if (name === "peerRaftSnapshot") {
        // A whole (one-piece) snapshot from a stale term: served, refused, and the sender told our term.
        const piece = {
          from: "x1",
          term: 0,
          index: 1,
          lastTerm: 0,
          voters: [],
          sentAt: 0,
          offset: 0,
          total: 2,
          chunk: "{}",
        };
        response = await send(signed(spec.path, JSON.stringify(piece)));
        expect(response.status).toBe(200);
        const [reply] = (await json<{ messages: Array<{ type: string; index: number; term: number }> }>(response))
          .messages;
        expect(reply?.type).toBe("snapshot-reply");
        expect(reply?.index).toBe(0);
        expect(reply?.term).toBeGreaterThan(0);
      } else if (name === "peerWorkClaim") {
        const offer = {
          node: "x1",
          types: [],
          capabilities: [],
          freeSlots: 1,
          gpus: 0,
          freeGpuMemoryGb: 0,
          freeDiskGb: 1,
          slotsPerType: {},
        };
        response = await send(signed(spec.path, JSON.stringify({ offer, max: 1 })));
        expect(response.status).toBe(200);
        expect((await json<{ claims: unknown[] }>(response)).claims).toEqual([]);
      } else if (spec.auth === "peer" && spec.path.startsWith("/peer/work/")) {
        // A report on a lease for an item that does not exist: served, and refused by name.
        response = await send(signed(spec.path.replace(":id", "nope"), JSON.stringify({ leaseId: "1.1.0" })));
        expect(response.status).toBe(404);
        expect((await json(response)).error).toBe("no_such_item");
      } else if (name === "peerManifest") {
        response = await signedGet(spec.path.replace(":category", "models"));
        expect(response.status).toBe(200);
        expect((await json<{ node: string; category: string }>(response)).category).toBe("models");
      } else if (name === "peerFile") {
        // A range of the indexed model, once the first scan has hashed it.
        const path = spec.path.replace(":sha256", MODEL_SHA);
        response = await waitForStatus(() => signedGet(path, { range: "bytes=10-19" }), 206);
        expect(new Uint8Array(await response.arrayBuffer())).toEqual(MODEL_BYTES.slice(10, 20));
        const missing = await signedGet(spec.path.replace(":sha256", "0".repeat(64)));
        expect(missing.status).toBe(404);
        expect((await json(missing)).error).toBe("no_such_file");
        const malformed = await signedGet(spec.path.replace(":sha256", "not-a-hash"));
        expect(malformed.status).toBe(422);
        expect((await json(malformed)).field).toBe("params.sha256");
      } else if (name === "peerRelay") {
        // Without a WebSocket upgrade the lane is not opened: the answer only says who asked, for which lane.
        response = await signedGet(`${spec.path}?lane=control`);
        expect(response.status).toBe(200);
        expect(await json<{ node: string; lane: string }>(response)).toEqual({ node: "x1", lane: "control" });
      } else if (name === "peerFilePieces") {
        response = await waitForStatus(() => signedGet(spec.path.replace(":sha256", MODEL_SHA)), 200);
        const map = await json<{ size: number; pieces: string[] }>(response);
        expect(map.size).toBe(MODEL_BYTES.length);
        expect(map.pieces.length).toBe(2);
      } else if (name === "syncSession") {
        response = await get(spec.path.replace(":id", "nope"));
        expect(response.status).toBe(404);
        expect((await json(response)).error).toBe("no_such_session");
      } else if (name === "syncStart") {
        response = await postJson(spec.path, JSON.stringify({ category: "nope" }));
        expect(response.status).toBe(422);
        expect((await json(response)).field).toBe("body.category");
        response = await postJson(spec.path, "{}");
        expect(response.status).toBe(200);
        expect((await json<{ sessions: unknown[] }>(response)).sessions).toEqual([]);
      } else if (spec.auth === "peer") {
        response = await send(signed(spec.path, ping()));
        expect(response.status).toBe(200);
      } else if (name === "workAdd" || name === "workBatch") {
        // This node's cluster file has no job templates: a served route refuses the type by name.
        const one = { type: "selfplay", config: { games: 1 } };
        response = await postJson(spec.path, JSON.stringify(name === "workAdd" ? one : { items: [one] }));
        expect(response.status).toBe(422);
        expect((await json(response)).message).toContain("[jobs.selfplay]");
      } else if (name === "workGet" || name === "workCancel") {
        const path = spec.path.replace(":id", "nope");
        response = spec.method === "GET" ? await get(path) : await postJson(path, "{}");
        expect(response.status).toBe(404);
        expect((await json(response)).error).toBe("no_such_item");
      } else if (name === "evaluationCancel") {
        response = await postJson(spec.path.replace(":id", "nope"), "{}");
        expect(response.status).toBe(404);
        expect((await json(response)).error).toBe("no_such_evaluation");
      } else if (name.startsWith("run") && spec.path.includes(":name")) {
        // This node's cluster file has no runs: a served route says which run it lacks.
        const path = spec.path.replace(":name", "nope");
        const bodies: Record<string, unknown> = {
          runPromote: { model: "a".repeat(64) },
          runAbtestStart: { a: "a".repeat(64), b: "b".repeat(64) },
          runTournamentStart: { players: ["a".repeat(64), "random"] },
        };
        const body = JSON.stringify(bodies[name] ?? {});
        response = spec.method === "GET" ? await get(path) : await postJson(path, body);
        expect(response.status).toBe(404);
        expect((await json(response)).error).toBe("no_such_run");
      } else if (name === "workNode") {
        response = await get(spec.path.replace(":id", "solo"));
        expect(response.status).toBe(200);
      } else if (name === "kvSet") {
        response = await postJson(spec.path, JSON.stringify({ key: "contract", value: { n: 1 } }));
        expect(response.status).toBe(200);
        expect((await json<{ index: number }>(response)).index).toBeGreaterThan(0);
      } else if (name === "kvGet") {
        response = await get(`${spec.path}?key=contract`);
        expect(response.status).toBe(200);
        expect((await json<{ value: unknown }>(response)).value).toEqual({ n: 1 });
      } else if (name === "electionTransfer") {
        response = await postJson(spec.path, JSON.stringify({ to: "solo" }));
        expect(response.status).toBe(200);
      } else if (name === "voters") {
        // The only voter cannot remove itself (it leads): a served route refuses with a reason.
        response = await postJson(spec.path, JSON.stringify({ action: "remove", id: "solo" }));
        expect(response.status).toBe(422);
        expect((await json(response)).message).toContain("transfer leadership first");
      } else if (name === "drain") {
        // Draining the only node is harmless here (nothing to claim): it answers how many jobs still run.
        response = await postJson(spec.path, "{}");
        expect(response.status).toBe(200);
        expect(await json<unknown>(response)).toEqual({ draining: true, running: 0, reason: "operator request" });
      } else if (name === "undrain") {
        response = await postJson(spec.path, "{}");
        expect(response.status).toBe(200);
        expect(await json<unknown>(response)).toEqual({ draining: false, running: 0, reason: null });
      } else if (name === "electionStepDown") {
        // Sent an invalid body: a valid one would depose the leader the other recipes rely on.
        response = await postJson(spec.path, JSON.stringify({ now: true }));
        expect(response.status).toBe(422);
      } else if (spec.method === "GET") {
        response = await get(spec.path, spec.auth === "operator" ? auth() : {});
        expect(response.status).toBe(200);
      } else {
        throw new Error(`no request recipe for ${name}: extend this test`);
      }
    });
  }
});

describe("peer signatures on /peer/swim", () => {
  const path = ROUTES.peerSwim.path;

  test("unsigned is 401 naming the missing header", async () => {
    const response = await postJson(path, ping(), {});
    expect(response.status).toBe(401);
    const body = await json(response);
    expect(body.error).toBe("unauthorized");
    expect(body.message).toContain("missing header x-p2p-node");
  });

  test("an operator token does not stand in for a signature", async () => {
    const response = await postJson(path, ping());
    expect(response.status).toBe(401);
    expect((await json(response)).message).toContain("missing header");
  });

  test("forged (other secret) is 401 bad signature", async () => {
    const response = await send(signed(path, ping(), { secret: randomBytes(32).toString("hex") }));
    expect(response.status).toBe(401);
    expect((await json(response)).message).toContain("bad signature");
  });

  test("a body changed after signing is 401 bad signature", async () => {
    const req = signed(path, ping());
    const response = await send({ ...req, body: ping("x1", 2) });
    expect(response.status).toBe(401);
    expect((await json(response)).message).toContain("bad signature");
  });

  test("a stale timestamp is 401 mentioning clock skew", async () => {
    const response = await send(signed(path, ping(), { now: Date.now() - 10 * 60_000 }));
    expect(response.status).toBe(401);
    expect((await json(response)).message).toContain("clock skew");
  });

  test("the same signed request twice: the second is 401 replayed nonce", async () => {
    const req = signed(path, ping());
    const first = await send(req);
    expect(first.status).toBe(200);
    const second = await send(req);
    expect(second.status).toBe(401);
    expect((await json(second)).message).toContain("replayed nonce");
  });

  test("a valid signed ping is answered with an ack", async () => {
    const response = await send(signed(path, ping("x1", 42)));
    expect(response.status).toBe(200);
    const body = await json<{ messages: Array<{ type: string; from: string; seq: number; updates: unknown[] }> }>(
      response,
    );
    expect(body.messages).toHaveLength(1);
    expect(body.messages[0]).toMatchObject({ type: "ack", from: "solo", seq: 42 });
    expect(Array.isArray(body.messages[0]?.updates)).toBe(true);
  });

  test("a message whose from differs from the signer is 403", async () => {
    const response = await send(signed(path, ping("x2"), { nodeId: "x1" }));
    expect(response.status).toBe(403);
    const body = await json(response);
    expect(body.error).toBe("forbidden");
    expect(body.message).toContain('"x2"');
    expect(body.message).toContain('"x1"');
  });
});

describe("bad input is a 4xx JSON naming the field, never a 5xx", () => {
  test("seq of the wrong type is 422 naming the body field", async () => {
    const response = await send(signed(ROUTES.peerSwim.path, ping("x1", "one")));
    expect(response.status).toBe(422);
    const body = await json(response);
    expect(body.error).toBe("validation");
    expect(body.field).toStartWith("body.");
    expect(body.field).toContain("messages[0]");
    expect(body.field).toContain("seq");
    expect(body.found).toBe('"one"');
    expect(body.message).toContain(body.field ?? "?");
  });

  test("an unknown message type is 422", async () => {
    const text = JSON.stringify({ messages: [{ type: "hello", from: "x1" }] });
    const response = await send(signed(ROUTES.peerSwim.path, text));
    expect(response.status).toBe(422);
    const body = await json(response);
    expect(body.error).toBe("validation");
    expect(body.field).toStartWith("body.messages[0]");
  });

  test("an empty envelope is 422", async () => {
    const response = await send(signed(ROUTES.peerSwim.path, JSON.stringify({ messages: [] })));
    expect(response.status).toBe(422);
    expect((await json(response)).field).toBe("body.messages");
  });

  test("malformed JSON on a signed request is 400 bad_request", async () => {
    const response = await send(signed(ROUTES.peerSwim.path, '{"messages": [ nope'));
    expect(response.status).toBe(400);
    expect((await json(response)).error).toBe("bad_request");
  });

  test("GET /traces?limit=abc is 422 naming query.limit", async () => {
    const response = await get("/traces?limit=abc");
    expect(response.status).toBe(422);
    const body = await json(response);
    expect(body.error).toBe("validation");
    expect(body.field).toBe("query.limit");
    expect(body.found).toContain("abc");
  });

  test("GET /traces with an unknown query key is 422", async () => {
    const response = await get("/traces?bogus=1");
    expect(response.status).toBe(422);
    expect((await json(response)).field).toBe("query.bogus");
  });

  test("an oversized body (> 4 MiB) is refused with 413, and the node keeps serving", async () => {
    const big = JSON.stringify({ messages: [{ type: "gossip", from: "x1", updates: [] }], pad: "x".repeat(5 << 20) });
    const response = await send(signed(ROUTES.peerSwim.path, big));
    expect(response.status).toBe(413);
    expect((await json(response)).error).toBe("payload_too_large");
    const health = await get("/health", {});
    expect(health.status).toBe(200);
    // and a normal signed request still goes through
    expect((await send(signed(ROUTES.peerSwim.path, ping()))).status).toBe(200);
  });

  test("a body just under the limit is read and judged on its content, not refused", async () => {
    const text = JSON.stringify({ messages: [{ type: "gossip", from: "x1", updates: [] }] });
    const padded = text + " ".repeat(4 * 1024 * 1024 - text.length - 1);
    const response = await send(signed(ROUTES.peerSwim.path, padded));
    expect(response.status).toBe(200);
    expect(await json<{ messages: unknown[] }>(response)).toEqual({ messages: [] });
  });
});

describe("backpressure on the work queue", () => {
  test("past the hard limit a submission gets 429 with Retry-After; the status says so", async () => {
    const submit = (id: string) => postJson(ROUTES.workAdd.path, JSON.stringify({ id, type: "export" }));
    for (const id of ["bp-1", "bp-2", "bp-3"]) expect((await submit(id)).status).toBe(200);
    const refused = await submit("bp-4");
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect((await json(refused)).error).toBe("backpressure");
    const status = await json<{ backpressure: { queued: number; level: string } }>(await get(ROUTES.workStatus.path));
    expect(status.backpressure).toMatchObject({ queued: 3, level: "refusing" });
  });
});

describe("bodies must be JSON objects with finite numbers", () => {
  test("POST /admin/leave with null, [] or a string is 422 naming body, and the node stays", async () => {
    for (const [text, found] of [
      ["null", "null"],
      ["[]", "an array"],
      ['"bye"', "a string"],
    ]) {
      const response = await postJson(ROUTES.leave.path, text as string);
      expect(response.status).toBe(422);
      const body = await json(response);
      expect(body.field).toBe("body");
      expect(body.found).toBe(found as string);
    }
    expect((await get("/status")).status).toBe(200);
  });

  test("an empty body is 400 and a body not sent as JSON is 415, each naming body", async () => {
    const empty = await postJson(ROUTES.drain.path, "");
    expect(empty.status).toBe(400);
    expect(await json(empty)).toMatchObject({ field: "body", found: "an empty body" });
    const plain = await fetch(`${base}${ROUTES.drain.path}`, {
      method: "POST",
      headers: { ...auth(), "content-type": "text/plain" },
      body: "{}",
    });
    expect(plain.status).toBe(415);
    expect(await json(plain)).toMatchObject({ field: "body", expected: expect.stringContaining("application/json") });
    const none = await fetch(`${base}${ROUTES.drain.path}`, { method: "POST", headers: auth() });
    expect(none.status).toBe(415);
    expect((await json(none)).found).toBe("no content-type");
  });

  test("1e309 anywhere in a body is 422 naming its path, and nothing is stored", async () => {
    const response = await postJson(ROUTES.kvSet.path, '{"key": "inf", "value": {"gpu": [1, -1e999]}}');
    expect(response.status).toBe(422);
    expect(await json(response)).toMatchObject({ field: "body.value.gpu[1]", expected: "a finite number" });
    const top = await postJson(ROUTES.kvSet.path, '{"key": "inf", "value": 1e309}');
    expect((await json(top)).field).toBe("body.value");
    const read = await get(`${ROUTES.kvGet.path}?key=inf`);
    expect((await json<{ value: unknown }>(read)).value ?? null).toBeNull();
  });

  test("a body nested 100,000 deep is 422 naming body, not a stack overflow", async () => {
    const deep = `{"key": "deep", "value": ${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
    const response = await postJson(ROUTES.kvSet.path, deep);
    expect(response.status).toBe(422);
    expect(await json(response)).toMatchObject({ field: "body", expected: "at most 64 levels of nesting" });
  });
});

describe("methods, encodings and query strings", () => {
  test("a wrong method on a served path is 405 with Allow", async () => {
    const leave = await get(ROUTES.leave.path);
    expect(leave.status).toBe(405);
    expect(leave.headers.get("allow")).toBe("POST");
    expect((await json(leave)).error).toBe("method_not_allowed");
    const work = await fetch(`${base}/work`, { method: "PUT", headers: auth() });
    expect(work.status).toBe(405);
    expect(work.headers.get("allow")).toBe("GET, HEAD, POST");
    expect((await get("/no/such/path")).status).toBe(404);
  });

  test("a bad percent-encoding in a path parameter is 400 naming it", async () => {
    for (const id of ["%E0%A4%A", "%ZZ", "%"]) {
      const response = await get(`/work/${id}`);
      expect(response.status).toBe(400);
      expect(await json(response)).toMatchObject({ error: "bad_encoding", field: "params.id" });
    }
  });

  test("a repeated query key is 422 naming it; a bad encoding in a value is 400 naming it", async () => {
    const repeated = await get("/traces?limit=1&limit=2");
    expect(repeated.status).toBe(422);
    expect((await json(repeated)).field).toBe("query.limit");
    const bad = await get("/traces?machine=%E0%A4%A");
    expect(bad.status).toBe(400);
    expect((await json(bad)).field).toBe("query.machine");
  });
});

describe("the body limit answers in JSON however the body is sent", () => {
  /** Writes raw bytes to the node and returns what it answers before closing or within a second. */
  async function rawExchange(head: string): Promise<string> {
    const url = new URL(base);
    let answer = "";
    const { promise, resolve } = Promise.withResolvers<void>();
    const socket = await Bun.connect({
      hostname: url.hostname,
      port: Number(url.port),
      socket: {
        data: (_s, data) => {
          answer += data.toString();
          if (answer.includes("\r\n\r\n") && answer.includes("}")) resolve();
        },
        close: () => resolve(),
      },
    });
    socket.write(head);
    await Promise.race([promise, Bun.sleep(2_000)]);
    socket.end();
    return answer;
  }

  test("a declared length of 100 MB is a JSON 413 without sending the body", async () => {
    const answer = await rawExchange(
      `POST /kv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${config.token}\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n`,
    );
    expect(answer).toStartWith("HTTP/1.1 413");
    expect(answer).toContain('"error":"payload_too_large"');
  });

  test("a chunked body past the limit is a JSON 413, on operator and peer routes", async () => {
    const chunk = new Uint8Array(1 << 20).fill(0x20);
    const streamOf = (mib: number) =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < mib; i++) controller.enqueue(chunk);
          controller.close();
        },
      });
    const operator = await fetch(`${base}${ROUTES.kvSet.path}`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body: streamOf(9),
    });
    expect(operator.status).toBe(413);
    expect((await json(operator)).error).toBe("payload_too_large");
    const peer = signed(ROUTES.peerSwim.path, "");
    const signedPeer = await fetch(`${base}${peer.path}`, { method: "POST", headers: peer.headers, body: streamOf(9) });
    expect(signedPeer.status).toBe(413);
    expect((await json(signedPeer)).error).toBe("payload_too_large");
    expect((await get("/health", {})).status).toBe(200);
    // Under the limit, a chunked body is read and judged like any other.
    const small = await fetch(`${base}${ROUTES.drain.path}`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body: new Blob(["{}"]).stream(),
    });
    expect(small.status).toBe(200);
    expect((await json<{ draining: boolean }>(small)).draining).toBe(true);
  });
});

test("a 422 echoes at most 200 characters of what it was sent", async () => {
  const response = await postJson(ROUTES.electionTransfer.path, JSON.stringify({ to: "!".repeat(100_000) }));
  expect(response.status).toBe(422);
  const body = await json(response);
  expect(body.field).toBe("body.to");
  expect(body.found?.length).toBeLessThanOrEqual(201);
  expect(body.message.length).toBeLessThan(400);
});
