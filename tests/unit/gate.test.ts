import { describe, expect, test } from "bun:test";
import { AuthFailures } from "../../src/net/auth-failures.ts";
import { gate } from "../../src/net/gate.ts";
import { LoginThrottle } from "../../src/net/login-throttle.ts";
import { ReplayGuard } from "../../src/net/replay-guard.ts";
import { signRequest } from "../../src/net/signing.ts";
import type { Logger } from "../../src/observability/log.ts";

/**
 * The gate in front of a node, in-process: what headers alone can prove wrong is refused before a byte of
 * the body is read, and a refusal from a known peer is warned about, once a minute, naming it.
 */

const SECRET = "s".repeat(64);
const SELF = "n1";
const PATH = "/peer/raft";

function capture(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const skip = () => {};
  return { log: { debug: skip, info: skip, warn: (m) => warnings.push(m), error: skip }, warnings };
}

function setup(now = () => 1_000_000) {
  const { log, warnings } = capture();
  const failures = new AuthFailures(log, now);
  let routed = 0;
  const handler = gate(
    {
      token: "t".repeat(32),
      secret: SECRET,
      self: SELF,
      knownSender: (id) => id === "n2" || id === "n3",
      replay: new ReplayGuard({ windowMs: 30_000, maxStreams: 100, reorder: 64 }),
      failures,
      logins: new LoginThrottle({ maxFailures: 3, windowMs: 60_000, maxAddresses: 100 }),
      maxSkewMs: 30_000,
      now,
    },
    async () => {
      routed++;
      return new Response("{}");
    },
  );
  return { handler, failures, warnings, routed: () => routed };
}

/** A 4 MiB body that counts how much of it anyone pulled. */
function countedBody(): { body: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  let left = 64;
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (left-- === 0) return controller.close();
        pulled += 65_536;
        controller.enqueue(new Uint8Array(65_536));
      },
    },
    { highWaterMark: 0 },
  );
  return { body, pulled: () => pulled };
}

function request(headers: Record<string, string>, body: ReadableStream<Uint8Array>): Request {
  return new Request(`http://127.0.0.1:1${PATH}`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body,
  });
}

const headersFor = (over: { nodeId?: string; to?: string; nonce?: string; secret?: string } = {}) =>
  signRequest({
    secret: over.secret ?? SECRET,
    nodeId: over.nodeId ?? "n2",
    method: "POST",
    pathWithQuery: PATH,
    body: "{}",
    now: 1_000_000,
    to: over.to ?? SELF,
    ...(over.nonce ? { nonce: over.nonce } : {}),
  });

describe("a forged peer request is refused before its body is read", () => {
  test.each([
    ["an unknown sender", { nodeId: "mallory" }, "unknown sender mallory"],
    ["another destination", { to: "n3" }, "signed for n3, not for this node (n1)"],
  ])("%s: 401 and not one byte pulled", async (_what, over, reason) => {
    const { handler } = setup();
    const { body, pulled } = countedBody();
    const response = await handler(request(headersFor(over), body), "127.0.0.9");
    expect(response.status).toBe(401);
    expect(((await response.json()) as { message: string }).message).toContain(reason);
    expect(pulled()).toBe(0);
  });

  test("a nonce already seen: refused unread, even though the first request carried it", async () => {
    const { handler, routed } = setup();
    const nonce = "0011223344556677000000000000000a";
    const first = new Request(`http://127.0.0.1:1${PATH}`, {
      method: "POST",
      headers: { ...headersFor({ nonce }), "content-type": "application/json" },
      body: "{}",
    });
    expect((await handler(first)).status).toBe(200);
    const { body, pulled } = countedBody();
    const again = await handler(request(headersFor({ nonce }), body));
    expect(again.status).toBe(401);
    expect(pulled()).toBe(0);
    expect(routed()).toBe(1);
  });

  test("a wrong secret is read and refused, and warned about once a minute, naming the sender and its address", async () => {
    let now = 1_000_000;
    const { handler, failures, warnings } = setup(() => now);
    for (let i = 0; i < 5; i++) {
      const r = new Request(`http://127.0.0.1:1${PATH}`, {
        method: "POST",
        headers: { ...headersFor({ secret: "w".repeat(64) }), "content-type": "application/json" },
        body: "{}",
      });
      expect((await handler(r, "127.0.0.9")).status).toBe(401);
    }
    expect(warnings).toEqual([
      "signed request from n2 (127.0.0.9) refused: bad signature; is its cluster.secret the same as ours?",
    ]);
    expect(failures.list("inbound")).toMatchObject([{ peer: "n2", address: "127.0.0.9", count: 5 }]);
    now += 61_000;
    failures.record("inbound", "n2", "127.0.0.9", "bad signature");
    expect(warnings).toHaveLength(2);
  });
});

describe("failed operator logins are throttled per address", () => {
  const TOKEN = "t".repeat(32);
  function throttledGate() {
    let now = 1_000_000;
    let routed = 0;
    const { log } = capture();
    const handler = gate(
      {
        token: TOKEN,
        secret: SECRET,
        self: SELF,
        knownSender: () => true,
        replay: new ReplayGuard({ windowMs: 30_000, maxStreams: 100, reorder: 64 }),
        failures: new AuthFailures(log, () => now),
        logins: new LoginThrottle({ maxFailures: 3, windowMs: 60_000, maxAddresses: 100 }),
        maxSkewMs: 30_000,
        now: () => now,
      },
      async (request) => {
        routed++;
        // The dashboard's login form answers a wrong token with 401, as src/ui/routes.ts does.
        const form = request.method === "POST" ? await request.text() : "";
        return new Response("{}", { status: form.includes("wrong") ? 401 : 200 });
      },
    );
    const api = (token: string | null, from: string) =>
      handler(
        new Request("http://127.0.0.1:1/status", {
          headers: token === null ? {} : { authorization: `Bearer ${token}` },
        }),
        from,
      );
    const login = (token: string, from: string) =>
      handler(new Request("http://127.0.0.1:1/ui/login", { method: "POST", body: `token=${token}` }), from);
    return { api, login, routed: () => routed, advance: (ms: number) => (now += ms) };
  }

  test("past the limit an address is refused before its token is looked at, others are not, and it ends", async () => {
    const g = throttledGate();
    for (let i = 0; i < 3; i++) expect((await g.api("wrong", "10.0.0.1")).status).toBe(401);
    const refused = await g.api(TOKEN, "10.0.0.1");
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBe(60);
    expect(((await refused.json()) as { message: string }).message).toContain("too many failed logins from 10.0.0.1");
    expect((await g.api(TOKEN, "10.0.0.2")).status).toBe(200);
    g.advance(30_000);
    expect((await g.api(TOKEN, "10.0.0.1")).status).toBe(429);
    g.advance(30_001);
    expect((await g.api(TOKEN, "10.0.0.1")).status).toBe(200);
  });

  test("the dashboard's login form counts too, and a refused try never reaches it", async () => {
    const g = throttledGate();
    for (let i = 0; i < 3; i++) expect((await g.login("wrong", "10.0.0.3")).status).toBe(401);
    const before = g.routed();
    expect((await g.login("right", "10.0.0.3")).status).toBe(429);
    expect((await g.api(TOKEN, "10.0.0.3")).status).toBe(429);
    expect(g.routed()).toBe(before);
    // A missing token is not a guess: it is not counted.
    const h = throttledGate();
    for (let i = 0; i < 5; i++) {
      expect((await h.api(null, "10.0.0.4")).status).toBe(401);
    }
    expect((await h.api(TOKEN, "10.0.0.4")).status).toBe(200);
  });

  test("the addresses it remembers are bounded, the oldest forgotten first", () => {
    const t = new LoginThrottle({ maxFailures: 2, windowMs: 60_000, maxAddresses: 2 });
    for (const a of ["a", "b", "c"]) {
      t.fail(a, 0);
      t.fail(a, 1);
    }
    expect(t.failuresTracked).toBe(2);
    expect(t.waitMs("a", 2)).toBe(0);
    expect(t.waitMs("c", 2)).toBe(59_998);
  });
});
