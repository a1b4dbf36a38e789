import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** HMAC-SHA256 authentication for node-to-node requests (`/peer/*`) over a shared cluster secret. */

export const SIGNATURE_HEADERS = {
  node: "x-p2p-node",
  ts: "x-p2p-ts",
  nonce: "x-p2p-nonce",
  signature: "x-p2p-signature",
} as const;

export type VerifyResult = { ok: true; nodeId: string } | { ok: false; reason: string };

const NONCE_RE = /^[0-9a-f]{32}$/;
const SIGNATURE_RE = /^[0-9a-f]{64}$/;
const TS_RE = /^\d{1,16}$/;

function hmacHex(opts: {
  secret: string;
  nodeId: string;
  method: string;
  pathWithQuery: string;
  body: Uint8Array | string;
  ts: string;
  nonce: string;
}): string {
  const bodyHash = createHash("sha256").update(opts.body).digest("hex");
  const canonical = [opts.method.toUpperCase(), opts.pathWithQuery, bodyHash, opts.nodeId, opts.ts, opts.nonce].join(
    "\n",
  );
  return createHmac("sha256", opts.secret).update(canonical).digest("hex");
}

/** Returns the four signature headers for a request; `body` is the raw body ("" for GET). */
export function signRequest(opts: {
  secret: string;
  nodeId: string;
  method: string;
  pathWithQuery: string;
  body: Uint8Array | string;
  now: number;
  nonce?: string;
}): Record<string, string> {
  const nonce = opts.nonce ?? randomBytes(16).toString("hex");
  if (!NONCE_RE.test(nonce)) throw new Error("nonce must be 16 bytes as lowercase hex");
  const ts = String(Math.trunc(opts.now));
  return {
    [SIGNATURE_HEADERS.node]: opts.nodeId,
    [SIGNATURE_HEADERS.ts]: ts,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: hmacHex({ ...opts, ts, nonce }),
  };
}

type ReplayOutcome = "fresh" | "replayed" | "full";

/** Bounded memory of recently seen (nodeId, nonce) pairs. */
export class ReplayGuard {
  private readonly windowMs: number;
  private readonly maxEntries: number;
  /** key -> expiry time (ts + windowMs), in insertion order. */
  private readonly seen = new Map<string, number>();

  constructor(opts: { windowMs: number; maxEntries: number }) {
    if (!(opts.windowMs > 0) || !(opts.maxEntries >= 1)) throw new Error("windowMs and maxEntries must be positive");
    this.windowMs = opts.windowMs;
    this.maxEntries = opts.maxEntries;
  }

  get size(): number {
    return this.seen.size;
  }

  /** true if nonce is fresh (and records it), false if seen within window or the cache is full. */
  remember(nodeId: string, nonce: string, ts: number, now: number): boolean {
    return this.record(nodeId, nonce, ts, now) === "fresh";
  }

  /** Like `remember`, but says why a nonce was not accepted. */
  record(nodeId: string, nonce: string, ts: number, now: number): ReplayOutcome {
    this.sweep(now);
    const key = `${nodeId}\n${nonce}`;
    const expiresAt = this.seen.get(key);
    if (expiresAt !== undefined) {
      if (expiresAt >= now) return "replayed";
      this.seen.delete(key);
    }
    // Evicting live entries would let their nonces be replayed within the skew window, so refuse instead.
    if (this.seen.size >= this.maxEntries) return "full";
    this.seen.set(key, ts + this.windowMs);
    return "fresh";
  }

  /**
   * Drops expired entries from the front of the insertion order, stopping at the first live one. Accepted ts values
   * lie within the skew window of arrival, so insertion order tracks expiry order to within that window; an expired
   * entry stuck behind a live one is dropped as soon as the ones ahead of it expire.
   */
  private sweep(now: number): void {
    for (const [key, expiresAt] of this.seen) {
      if (expiresAt >= now) return;
      this.seen.delete(key);
    }
  }
}

type SignatureFields = Record<keyof typeof SIGNATURE_HEADERS, string>;

/**
 * The checks that need no body: headers present and well-formed, timestamp within the skew.
 * Run before reading a body, so an unsigned or stale caller cannot make us buffer one.
 */
export function checkSignatureHeaders(
  headers: Headers,
  now: number,
  maxSkewMs: number,
): { ok: true; fields: SignatureFields } | { ok: false; reason: string } {
  const fields: SignatureFields = { node: "", ts: "", nonce: "", signature: "" };
  for (const field of Object.keys(SIGNATURE_HEADERS) as (keyof typeof SIGNATURE_HEADERS)[]) {
    const value = headers.get(SIGNATURE_HEADERS[field]);
    if (!value) return { ok: false, reason: `missing header ${SIGNATURE_HEADERS[field]}` };
    fields[field] = value;
  }
  if (!TS_RE.test(fields.ts)) return { ok: false, reason: `malformed ${SIGNATURE_HEADERS.ts}` };
  if (!NONCE_RE.test(fields.nonce)) return { ok: false, reason: `malformed ${SIGNATURE_HEADERS.nonce}` };
  if (!SIGNATURE_RE.test(fields.signature)) return { ok: false, reason: `malformed ${SIGNATURE_HEADERS.signature}` };
  const skew = Math.abs(now - Number(fields.ts));
  if (skew > maxSkewMs) {
    return { ok: false, reason: `timestamp outside allowed clock skew of ${maxSkewMs} ms (off by ${skew} ms)` };
  }
  return { ok: true, fields };
}

/** Checks, in order: headers present and well-formed, clock skew, signature, then replay. */
export function verifyRequest(opts: {
  secret: string;
  method: string;
  pathWithQuery: string;
  body: Uint8Array | string;
  headers: Headers;
  now: number;
  maxSkewMs: number;
  replay: ReplayGuard;
}): VerifyResult {
  const envelope = checkSignatureHeaders(opts.headers, opts.now, opts.maxSkewMs);
  if (!envelope.ok) return envelope;
  const values = envelope.fields;
  const ts = Number(values.ts);

  const expected = Buffer.from(hmacHex({ ...opts, nodeId: values.node, ts: values.ts, nonce: values.nonce }), "hex");
  const given = Buffer.from(values.signature, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: "bad signature" };
  }

  // Only authenticated requests reach the replay cache, so forgeries cannot burn nonces or fill it.
  const outcome = opts.replay.record(values.node, values.nonce, ts, opts.now);
  if (outcome === "replayed") return { ok: false, reason: "replayed nonce" };
  if (outcome === "full") return { ok: false, reason: "replay cache full" };
  return { ok: true, nodeId: values.node };
}
