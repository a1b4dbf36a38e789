import { afterEach, describe, expect, test } from "bun:test";
import { Client, ContractError } from "../../src/client/client.ts";
import { CallError } from "../../src/net/client.ts";

/** The typed client against stand-in nodes that answer as a scenario needs (a real node is in contract.test.ts). */

const servers: Array<{ stop: (force: boolean) => unknown }> = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.stop(true);
});

/** A node on a free port answering each request with `answer`; what it was asked is kept. */
function standIn(answer: (request: Request, body: string) => Response) {
  const seen: Array<{ method: string; path: string; auth: string | null; body: string }> = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      const body = await request.text();
      const url = new URL(request.url);
      seen.push({
        method: request.method,
        path: url.pathname + url.search,
        auth: request.headers.get("authorization"),
        body,
      });
      return answer(request, body);
    },
  });
  servers.push(server);
  return { url: `http://127.0.0.1:${server.port}`, address: `127.0.0.1:${server.port}`, seen };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const HEALTH = { ok: true, id: "n1", version: "0.1.0" };

describe("typed client", () => {
  test("a route that does not exist cannot be named (compile time) nor called (run time)", async () => {
    const node = standIn(() => json(200, HEALTH));
    const client = new Client({ url: node.url, token: "t" });
    // @ts-expect-error: no such route in the table
    await expect(client.call("nope")).rejects.toThrow('no route "nope"');
    // @ts-expect-error: peer routes need the cluster's signature, not an operator's client
    await expect(client.call("peerSwim", { body: { messages: [] } })).rejects.toThrow('no route "peerSwim"');
    // @ts-expect-error: a route with a path parameter needs it
    await expect(client.call("run")).rejects.toThrow('missing path parameter "name"');
    expect(node.seen).toEqual([]);
    // Compile-time only: a query key the route does not take, a body of the wrong shape.
    const typeChecks = () => [
      // @ts-expect-error: not a query key of GET /traces
      client.call("traces", { query: { nope: 1 } }),
      // @ts-expect-error: the body's `to` must be a node id (a string)
      client.call("electionTransfer", { body: { to: 1 } }),
    ];
    expect(typeof typeChecks).toBe("function");
  });

  test("sends the path parameters, query and body, with the token; returns the typed answer", async () => {
    const view = {
      name: "c4",
      stage: "collecting",
      paused: false,
      best: null,
      candidate: null,
      generation: 0,
      newGames: 3,
      why: null,
      lastDecision: null,
    };
    const node = standIn(() => json(200, { runs: [view] }));
    const client = new Client({ url: node.url, token: "secret-token" });
    const { runs } = await client.call("runs");
    expect(runs[0]?.newGames).toBe(3);
    await new Client({ url: node.url, token: "secret-token" })
      .call("workCancel", { params: { id: "a b" }, body: { reason: "why" } })
      .catch(() => {});
    expect(node.seen[1]).toEqual({
      method: "POST",
      path: "/work/a%20b/cancel",
      auth: "Bearer secret-token",
      body: '{"reason":"why"}',
    });
  });

  test("an answer that does not match the route's schema is an error naming the route and the field", async () => {
    const node = standIn(() => json(200, { ok: true, id: 7, version: "x" }));
    const error = await new Client({ url: node.url, token: "t" }).call("health").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContractError);
    expect((error as ContractError).route).toBe("health");
    expect((error as Error).message).toContain("GET /health (health): the answer does not match its schema at id");
  });

  test("a number out of its range in an answer is refused by name (a term beyond a counter, a negative lease)", async () => {
    const view = { role: "non-voter", term: 2 ** 60, leader: null };
    const node = standIn(() => json(200, view));
    const error = await new Client({ url: node.url, token: "t" }).call("election").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContractError);
    expect((error as Error).message).toContain("at term");
    const fine = standIn(() => json(200, { ...view, term: 3 }));
    expect(await new Client({ url: fine.url, token: "t" }).call("election")).toEqual({ ...view, term: 3 } as never);
  });

  test("fields a newer node adds are kept in the answer (--json prints them)", async () => {
    const node = standIn(() => json(200, { ...HEALTH, extra: 1 }));
    expect(await new Client({ url: node.url, token: "t" }).call("health")).toEqual({ ...HEALTH, extra: 1 } as never);
  });

  test("a follower's 421 is followed to the leader it names", async () => {
    const leader = standIn(() => json(200, { index: 5, term: 2 }));
    const follower = standIn(() =>
      json(421, { error: "not_leader", message: "not the leader", leader: { id: "n2", address: leader.address } }),
    );
    const answer = await new Client({ url: follower.url, token: "t" }).call("kvSet", { body: { key: "k", value: 1 } });
    expect(answer).toEqual({ index: 5, term: 2 });
    expect(follower.seen).toHaveLength(1);
    expect(leader.seen.map((r) => r.body)).toEqual(['{"key":"k","value":1}']);
  });

  test("a 421 naming no leader (an election under way) is sent again with backoff for any call, until one leads", async () => {
    let calls = 0;
    const node = standIn(() =>
      ++calls < 3
        ? json(421, { error: "not_leader", message: "no leader", leader: null })
        : json(200, { index: 5, term: 2 }),
    );
    const retries: string[] = [];
    const client = new Client({ url: node.url, token: "t", onRetry: (e) => retries.push(e.message) });
    expect(await client.call("kvSet", { body: { key: "k", value: 1 } })).toEqual({ index: 5, term: 2 });
    expect(node.seen.map((r) => r.body)).toEqual(Array(3).fill('{"key":"k","value":1}'));
    expect(retries).toHaveLength(2);
  });

  test("the wait for a leader is bounded: past leaderWaitMs the 421 is the caller's", async () => {
    const node = standIn(() => json(421, { error: "not_leader", message: "no leader", leader: null }));
    const error = await new Client({ url: node.url, token: "t", leaderWaitMs: 0 })
      .call("kvSet", { body: { key: "k", value: 1 } })
      .catch((e: unknown) => e);
    expect((error as CallError).status).toBe(421);
    expect(node.seen).toHaveLength(1);
  });

  test("with retryForMs, an unknown outcome (503) is sent again unchanged until it is answered", async () => {
    let calls = 0;
    const node = standIn(() =>
      ++calls < 3
        ? json(503, { error: "write_failed", message: "disk" })
        : json(200, { added: ["a"], existing: [], queued: 1 }),
    );
    const retries: string[] = [];
    const client = new Client({ url: node.url, token: "t", onRetry: (e) => retries.push(e.message) });
    const body = { items: [{ id: "a", type: "probe" }] };
    expect(await client.call("workBatch", { body, retryForMs: 10_000 })).toEqual({
      added: ["a"],
      existing: [],
      queued: 1,
    });
    expect(node.seen.map((r) => r.body)).toEqual(Array(3).fill(JSON.stringify(body)));
    expect(retries).toHaveLength(2);
  });

  test("without retryForMs an unknown outcome is the caller's to decide; a definite refusal is never retried", async () => {
    const unknown = standIn(() => json(503, { error: "write_failed", message: "disk" }));
    await expect(
      new Client({ url: unknown.url, token: "t" }).call("workBatch", { body: { items: [] } }),
    ).rejects.toThrow(CallError);
    expect(unknown.seen).toHaveLength(1);
    const refused = standIn(() => json(422, { error: "validation", message: "body.items: too short" }));
    await expect(
      new Client({ url: refused.url, token: "t" }).call("workBatch", { body: { items: [] }, retryForMs: 10_000 }),
    ).rejects.toThrow("422");
    expect(refused.seen).toHaveLength(1);
  });
});
