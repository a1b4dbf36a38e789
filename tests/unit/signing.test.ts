import { describe, expect, test } from "bun:test";
import { ReplayGuard, SIGNATURE_HEADERS, signRequest, verifyRequest } from "../../src/net/signing.ts";

const SECRET = "cluster-secret";
const NOW = 1_700_000_000_000;
const SKEW = 30_000;
const NONCE = "00112233445566778899aabbccddeeff";

type Req = { method: string; pathWithQuery: string; body: Uint8Array | string };
const post: Req = { method: "POST", pathWithQuery: "/peer/files/abc?x=1", body: new TextEncoder().encode('{"a":1}') };

function sign(req: Req, overrides: { secret?: string; now?: number; nonce?: string } = {}): Headers {
  return new Headers(
    signRequest({
      secret: overrides.secret ?? SECRET,
      nodeId: "node-a",
      ...req,
      now: overrides.now ?? NOW,
      nonce: overrides.nonce ?? NONCE,
    }),
  );
}

function verify(req: Req, headers: Headers, replay = new ReplayGuard({ windowMs: 2 * SKEW, maxEntries: 100 })) {
  return verifyRequest({ secret: SECRET, ...req, headers, now: NOW, maxSkewMs: SKEW, replay });
}

describe("signRequest / verifyRequest", () => {
  test("valid signature is accepted", () => {
    expect(verify(post, sign(post))).toEqual({ ok: true, nodeId: "node-a" });
    const get: Req = { method: "get", pathWithQuery: "/peer/swim", body: "" };
    expect(verify({ ...get, method: "GET" }, sign(get))).toEqual({ ok: true, nodeId: "node-a" });
  });

  test("signRequest emits the four headers with a random 16-byte hex nonce by default", () => {
    const a = signRequest({ secret: SECRET, nodeId: "node-a", ...post, now: NOW });
    const b = signRequest({ secret: SECRET, nodeId: "node-a", ...post, now: NOW });
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
    const replay = new ReplayGuard({ windowMs: 2 * SKEW, maxEntries: 100 });
    const headers = sign(post);
    expect(verify(post, headers, replay).ok).toBe(true);
    expect(verify(post, headers, replay)).toEqual({ ok: false, reason: "replayed nonce" });
  });

  test("a forged request does not poison the nonce cache", () => {
    const replay = new ReplayGuard({ windowMs: 2 * SKEW, maxEntries: 100 });
    expect(verify(post, sign(post, { secret: "guessed" }), replay)).toEqual({ ok: false, reason: "bad signature" });
    expect(replay.size).toBe(0);
    expect(verify(post, sign(post), replay)).toEqual({ ok: true, nodeId: "node-a" });
  });
});

describe("ReplayGuard", () => {
  const nonce = (i: number) => i.toString(16).padStart(32, "0");

  test("nonces are scoped per node", () => {
    const guard = new ReplayGuard({ windowMs: 1000, maxEntries: 10 });
    expect(guard.remember("a", nonce(1), NOW, NOW)).toBe(true);
    expect(guard.remember("b", nonce(1), NOW, NOW)).toBe(true);
    expect(guard.remember("a", nonce(1), NOW, NOW + 1000)).toBe(false);
  });

  test("stays within maxEntries, evicting expired entries and refusing when full of live ones", () => {
    const guard = new ReplayGuard({ windowMs: 1000, maxEntries: 3 });
    expect(guard.remember("a", nonce(1), NOW, NOW)).toBe(true);
    expect(guard.remember("a", nonce(2), NOW + 100, NOW + 100)).toBe(true);
    expect(guard.remember("a", nonce(3), NOW + 200, NOW + 200)).toBe(true);
    expect(guard.size).toBe(3);

    // Full of unexpired entries: refuse rather than forget a live nonce.
    expect(guard.record("a", nonce(4), NOW + 300, NOW + 300)).toBe("full");
    expect(guard.remember("a", nonce(4), NOW + 300, NOW + 300)).toBe(false);
    expect(guard.record("a", nonce(1), NOW, NOW + 300)).toBe("replayed");
    expect(guard.size).toBe(3);

    // nonce(1) expires after NOW + 1000, which makes room for one more.
    expect(guard.remember("a", nonce(4), NOW + 1001, NOW + 1001)).toBe(true);
    expect(guard.size).toBe(3);
    expect(guard.record("a", nonce(5), NOW + 1001, NOW + 1001)).toBe("full");

    // Once everything has expired, the cache drains.
    expect(guard.remember("a", nonce(5), NOW + 5000, NOW + 5000)).toBe(true);
    expect(guard.size).toBe(1);
  });

  test("verifyRequest reports a full cache", () => {
    const replay = new ReplayGuard({ windowMs: 2 * SKEW, maxEntries: 1 });
    expect(verify(post, sign(post, { nonce: nonce(1) }), replay).ok).toBe(true);
    expect(verify(post, sign(post, { nonce: nonce(2) }), replay)).toEqual({ ok: false, reason: "replay cache full" });
  });
});
