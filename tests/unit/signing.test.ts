import { describe, expect, test } from "bun:test";
import { ReplayGuard } from "../../src/net/replay-guard.ts";
import {
  ANY_DESTINATION,
  checkDestination,
  nextNonce,
  SIGNATURE_HEADERS,
  signRequest,
  verifyRequest,
} from "../../src/net/signing.ts";

const SECRET = "cluster-secret";
const NOW = 1_700_000_000_000;
const SKEW = 30_000;
const NONCE = "00112233445566770000000000000001";

type Req = { method: string; pathWithQuery: string; body: Uint8Array | string };
const post: Req = { method: "POST", pathWithQuery: "/peer/files/abc?x=1", body: new TextEncoder().encode('{"a":1}') };

function sign(req: Req, overrides: { secret?: string; now?: number; nonce?: string; to?: string } = {}): Headers {
  return new Headers(
    signRequest({
      secret: overrides.secret ?? SECRET,
      nodeId: "node-a",
      ...req,
      now: overrides.now ?? NOW,
      nonce: overrides.nonce ?? NONCE,
      to: overrides.to ?? "node-b",
    }),
  );
}

function verify(
  req: Req,
  headers: Headers,
  replay = new ReplayGuard({ windowMs: SKEW, maxStreams: 100, reorder: 64 }),
) {
  return verifyRequest({
    secret: SECRET,
    self: "node-b",
    anyDestination: false,
    ...req,
    headers,
    now: NOW,
    maxSkewMs: SKEW,
    replay,
  });
}

describe("signRequest / verifyRequest", () => {
  test("valid signature is accepted", () => {
    expect(verify(post, sign(post))).toEqual({ ok: true, nodeId: "node-a" });
    const get: Req = { method: "get", pathWithQuery: "/peer/swim", body: "" };
    expect(verify({ ...get, method: "GET" }, sign(get))).toEqual({ ok: true, nodeId: "node-a" });
  });

  test("signRequest emits the five headers with a fresh nonce by default", () => {
    const a = signRequest({ secret: SECRET, nodeId: "node-a", ...post, now: NOW, to: "node-b" });
    const b = signRequest({ secret: SECRET, nodeId: "node-a", ...post, now: NOW, to: "node-b" });
    expect(Object.keys(a).sort()).toEqual(Object.values(SIGNATURE_HEADERS).sort());
    expect(a[SIGNATURE_HEADERS.ts]).toBe(String(NOW));
    expect(a[SIGNATURE_HEADERS.nonce]).toMatch(/^[0-9a-f]{32}$/);
    expect(a[SIGNATURE_HEADERS.nonce]).not.toBe(b[SIGNATURE_HEADERS.nonce]);
    expect(a[SIGNATURE_HEADERS.signature]).toMatch(/^[0-9a-f]{64}$/);
  });

  test("tampered body is rejected", () => {
    expect(verify({ ...post, body: '{"a":2}' }, sign(post))).toEqual({ ok: false, reason: "bad signature" });
  });

  test("tampered path, query or method is rejected", () => {
    const headers = sign(post);
    expect(verify({ ...post, pathWithQuery: "/peer/files/abd?x=1" }, headers)).toEqual({
      ok: false,
      reason: "bad signature",
    });
    expect(verify({ ...post, pathWithQuery: "/peer/files/abc?x=2" }, headers)).toEqual({
      ok: false,
      reason: "bad signature",
    });
    expect(verify({ ...post, method: "PUT" }, headers)).toEqual({ ok: false, reason: "bad signature" });
  });

  test("tampered sender id or timestamp is rejected", () => {
    const headers = sign(post);
    headers.set(SIGNATURE_HEADERS.node, "node-b");
    expect(verify(post, headers)).toEqual({ ok: false, reason: "bad signature" });
    const headers2 = sign(post);
    headers2.set(SIGNATURE_HEADERS.ts, String(NOW + 1));
    expect(verify(post, headers2)).toEqual({ ok: false, reason: "bad signature" });
  });

  test("request signed with the wrong secret is rejected", () => {
    expect(verify(post, sign(post, { secret: "guessed" }))).toEqual({ ok: false, reason: "bad signature" });
  });

  test("missing header is named", () => {
    for (const name of Object.values(SIGNATURE_HEADERS)) {
      const headers = sign(post);
      headers.delete(name);
      expect(verify(post, headers)).toEqual({ ok: false, reason: `missing header ${name}` });
    }
  });

  test("malformed headers are named", () => {
    const cases: [string, string][] = [
      [SIGNATURE_HEADERS.ts, "12abc"],
      [SIGNATURE_HEADERS.ts, "-5"],
      [SIGNATURE_HEADERS.nonce, "xyz"],
      [SIGNATURE_HEADERS.signature, "deadbeef"],
    ];
    for (const [name, value] of cases) {
      const headers = sign(post);
      headers.set(name, value);
      expect(verify(post, headers)).toEqual({ ok: false, reason: `malformed ${name}` });
    }
  });

  test("timestamp beyond the allowed skew is rejected, in the past and the future", () => {
    expect(verify(post, sign(post, { now: NOW - 45_012 }))).toEqual({
      ok: false,
      reason: "timestamp outside allowed clock skew of 30000 ms (off by 45012 ms)",
    });
    expect(verify(post, sign(post, { now: NOW + SKEW + 1 }))).toEqual({
      ok: false,
      reason: "timestamp outside allowed clock skew of 30000 ms (off by 30001 ms)",
    });
    expect(verify(post, sign(post, { now: NOW - SKEW })).ok).toBe(true);
    expect(verify(post, sign(post, { now: NOW + SKEW })).ok).toBe(true);
  });

  test("replaying an identical request is rejected the second time", () => {
    const replay = new ReplayGuard({ windowMs: SKEW, maxStreams: 100, reorder: 64 });
    const headers = sign(post);
    expect(verify(post, headers, replay).ok).toBe(true);
    expect(verify(post, headers, replay)).toEqual({ ok: false, reason: "replayed nonce" });
  });

  test("a forged request does not poison the nonce cache", () => {
    const replay = new ReplayGuard({ windowMs: SKEW, maxStreams: 100, reorder: 64 });
    expect(verify(post, sign(post, { secret: "guessed" }), replay)).toEqual({ ok: false, reason: "bad signature" });
    expect(replay.size).toBe(0);
    expect(verify(post, sign(post), replay)).toEqual({ ok: true, nodeId: "node-a" });
  });
});

describe("nonces", () => {
  test("each destination gets its own random stream, whose counter goes up by one per request", () => {
    const a1 = nextNonce("node-a", "10.0.0.1:8000");
    const a2 = nextNonce("node-a", "10.0.0.1:8000");
    const b1 = nextNonce("node-a", "10.0.0.2:8000");
    for (const n of [a1, a2, b1]) expect(n).toMatch(/^[0-9a-f]{32}$/);
    expect(a2.slice(0, 16)).toBe(a1.slice(0, 16));
    expect(Number.parseInt(a2.slice(16), 16)).toBe(Number.parseInt(a1.slice(16), 16) + 1);
    expect(b1.slice(0, 16)).not.toBe(a1.slice(0, 16));
  });
});

describe("ReplayGuard", () => {
  const STREAM = "0123456789abcdef";
  const nonce = (counter: number, stream = STREAM) => stream + counter.toString(16).padStart(16, "0");
  const guard = (opts: { maxStreams?: number; reorder?: number } = {}) =>
    new ReplayGuard({ windowMs: 1000, maxStreams: opts.maxStreams ?? 10, reorder: opts.reorder ?? 64 });

  test("a counter is accepted once per node and stream", () => {
    const g = guard();
    expect(g.record("a", nonce(1), NOW, NOW)).toBe("fresh");
    expect(g.record("b", nonce(1), NOW, NOW)).toBe("fresh");
    expect(g.record("a", nonce(1, "fedcba9876543210"), NOW, NOW)).toBe("fresh");
    expect(g.record("a", nonce(1), NOW, NOW + 500)).toBe("replayed");
  });

  test("requests arriving out of order within the window are accepted, each once", () => {
    const g = guard({ reorder: 64 });
    const order = [5, 1, 3, 70, 8, 64, 7, 100, 99, 37];
    for (const c of order) expect(g.record("a", nonce(c), NOW, NOW)).toBe("fresh");
    for (const c of [70, 64, 100, 99, 37]) expect(g.record("a", nonce(c), NOW, NOW)).toBe("replayed");
    // 100 is the newest: 36 is 64 behind it, past the window, whether or not it was seen.
    expect(g.record("a", nonce(36), NOW, NOW)).toBe("too-old");
    expect(g.record("a", nonce(8), NOW, NOW)).toBe("too-old");
    expect(g.record("a", nonce(38), NOW, NOW)).toBe("fresh");
  });

  test("a jump past the whole window forgets nothing it should remember", () => {
    const g = guard({ reorder: 32 });
    for (let c = 1; c <= 32; c++) expect(g.record("a", nonce(c), NOW, NOW)).toBe("fresh");
    expect(g.record("a", nonce(1_000), NOW, NOW)).toBe("fresh");
    expect(g.record("a", nonce(1_000), NOW, NOW)).toBe("replayed");
    // Slots reused by counters 969..999 were cleared: those never-seen counters are accepted once.
    expect(g.record("a", nonce(990), NOW, NOW)).toBe("fresh");
    expect(g.record("a", nonce(990), NOW, NOW)).toBe("replayed");
    expect(g.record("a", nonce(968), NOW, NOW)).toBe("too-old");
  });

  test("sustained traffic from one sender never fills it", () => {
    const g = guard({ maxStreams: 1, reorder: 64 });
    for (let c = 1; c <= 100_000; c++) {
      if (g.record("a", nonce(c), NOW, NOW) !== "fresh") throw new Error(`counter ${c} refused`);
    }
    expect(g.size).toBe(1);
  });

  test("past maxStreams new senders are refused until old streams expire", () => {
    const g = guard({ maxStreams: 2 });
    expect(g.record("a", nonce(1), NOW, NOW)).toBe("fresh");
    expect(g.record("b", nonce(1), NOW + 100, NOW + 100)).toBe("fresh");
    expect(g.record("c", nonce(1), NOW + 200, NOW + 200)).toBe("full");
    // a's newest request is older than the window after NOW + 1000: a is forgotten, c fits.
    expect(g.record("c", nonce(1), NOW + 1001, NOW + 1001)).toBe("fresh");
    expect(g.size).toBe(2);
  });

  test("a stream's newest timestamp keeps it remembered", () => {
    const g = guard({ maxStreams: 1 });
    expect(g.record("a", nonce(1), NOW, NOW)).toBe("fresh");
    expect(g.record("a", nonce(2), NOW + 900, NOW + 900)).toBe("fresh");
    expect(g.record("a", nonce(1), NOW, NOW + 1500)).toBe("replayed");
  });

  test("a counter beyond 2^53 is refused", () => {
    expect(guard().record("a", `${STREAM}ffffffffffffffff`, NOW, NOW)).toBe("bad-counter");
  });

  test("verifyRequest names each refusal", () => {
    const replay = new ReplayGuard({ windowMs: SKEW, maxStreams: 1, reorder: 32 });
    expect(verify(post, sign(post, { nonce: nonce(40) }), replay).ok).toBe(true);
    expect(verify(post, sign(post, { nonce: nonce(40) }), replay)).toEqual({ ok: false, reason: "replayed nonce" });
    expect(verify(post, sign(post, { nonce: nonce(2) }), replay)).toEqual({
      ok: false,
      reason: "nonce too far behind the sender's newest (reordered or replayed)",
    });
    expect(verify(post, sign(post, { nonce: nonce(1, "fedcba9876543210") }), replay)).toEqual({
      ok: false,
      reason: "replay guard full (too many senders at once)",
    });
  });
});

describe("the signature names the destination node", () => {
  test("a request signed for node-b is refused by node-c: a capture cannot be replayed across nodes", () => {
    const headers = sign(post);
    const atC = verifyRequest({
      secret: SECRET,
      self: "node-c",
      anyDestination: false,
      ...post,
      headers,
      now: NOW,
      maxSkewMs: SKEW,
      replay: new ReplayGuard({ windowMs: SKEW, maxStreams: 100, reorder: 64 }),
    });
    expect(atC).toEqual({
      ok: false,
      reason: "signed for node-b, not for this node (node-c): replayed from another node?",
    });
    expect(verify(post, headers).ok).toBe(true);
  });

  test("the destination header is covered by the signature", () => {
    const headers = sign(post, { to: "node-c" });
    headers.set(SIGNATURE_HEADERS.to, "node-b");
    expect(verify(post, headers)).toEqual({ ok: false, reason: "bad signature" });
  });

  test("'any node' is accepted only where the route allows it (a join through a seed's address)", () => {
    const headers = sign(post, { to: ANY_DESTINATION });
    expect(verify(post, headers)).toEqual({
      ok: false,
      reason: "signed for any node, which only the membership route accepts",
    });
    expect(checkDestination(ANY_DESTINATION, "node-b", true)).toEqual({ ok: true });
  });

  test("peek answers as record would, without recording", () => {
    const g = new ReplayGuard({ windowMs: SKEW, maxStreams: 100, reorder: 64 });
    expect(g.peek("a", NONCE, NOW)).toBe("fresh");
    expect(g.peek("a", NONCE, NOW)).toBe("fresh");
    expect(g.record("a", NONCE, NOW, NOW)).toBe("fresh");
    expect(g.peek("a", NONCE, NOW)).toBe("replayed");
  });
});
