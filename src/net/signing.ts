import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ReplayGuard, ReplayOutcome } from "./replay-guard.ts";

/** HMAC-SHA256 authentication for node-to-node requests (`/peer/*`) over a shared cluster secret. */

export const SIGNATURE_HEADERS = {
  node: "x-p2p-node",
  ts: "x-p2p-ts",
  nonce: "x-p2p-nonce",
  signature: "x-p2p-signature",
  /** The node the request is for: a request captured on its way to one node is refused by every other. */
  to: "x-p2p-to",
} as const;

/** The destination of a request sent before the receiver's id is known (joining through a seed's address). */
export const ANY_DESTINATION = "*";

export type VerifyResult = { ok: true; nodeId: string } | { ok: false; reason: string };

const NONCE_RE = /^[0-9a-f]{32}$/;
const SIGNATURE_RE = /^[0-9a-f]{64}$/;
const TS_RE = /^\d{1,16}$/;

function hmacHex(opts: {
  secret: string;
  nodeId: string;
  to: string;
  method: string;
  pathWithQuery: string;
  body: Uint8Array | string;
  ts: string;
  nonce: string;
}): string {
  const bodyHash = createHash("sha256").update(opts.body).digest("hex");
  const { method, pathWithQuery, nodeId, to, ts, nonce } = opts;
  const canonical = [method.toUpperCase(), pathWithQuery, bodyHash, nodeId, to, ts, nonce].join("\n");
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
  /** The destination node's id, or ANY_DESTINATION where it is not known yet; signed, and its own nonce stream. */
  to: string;
  nonce?: string;
}): Record<string, string> {
  const nonce = opts.nonce ?? nextNonce(opts.nodeId, opts.to);
  if (!NONCE_RE.test(nonce)) throw new Error("nonce must be 16 bytes as lowercase hex");
  const ts = String(Math.trunc(opts.now));
  return {
    [SIGNATURE_HEADERS.node]: opts.nodeId,
    [SIGNATURE_HEADERS.ts]: ts,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.to]: opts.to,
    [SIGNATURE_HEADERS.signature]: hmacHex({ ...opts, ts, nonce }),
  };
}

/** Per (sender, destination): a random stream id and a counter, so the receiver's replay guard stays small. */
const streams = new Map<string, { id: string; counter: number }>();
const MAX_STREAMS = 4_096;

/** The next nonce from `nodeId` to `destination`: 16 hex digits of stream id, 16 of counter. */
export function nextNonce(nodeId: string, destination: string): string {
  const key = `${nodeId}\n${destination}`;
  let stream = streams.get(key);
  if (!stream) {
    // A fresh stream is always safe to start, so forgetting them all bounds the map without harm.
    if (streams.size >= MAX_STREAMS) streams.clear();
    stream = { id: randomBytes(8).toString("hex"), counter: 0 };
    streams.set(key, stream);
  }
  stream.counter++;
  return stream.id + stream.counter.toString(16).padStart(16, "0");
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
  const fields: SignatureFields = { node: "", ts: "", nonce: "", signature: "", to: "" };
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

export const REPLAY_REASONS: Record<Exclude<ReplayOutcome, "fresh">, string> = {
  replayed: "replayed nonce",
  "too-old": "nonce too far behind the sender's newest (reordered or replayed)",
  full: "replay guard full (too many senders at once)",
  "bad-counter": "nonce counter out of range",
};

/**
 * Whether a request signed for `to` may be served by the node `self`: only if it names this node, or names
 * ANY_DESTINATION on a route that accepts it (the membership route a joining node sends to a seed's address).
 */
export function checkDestination(
  to: string,
  self: string,
  anyAccepted: boolean,
): { ok: true } | { ok: false; reason: string } {
  if (to === self || (to === ANY_DESTINATION && anyAccepted)) return { ok: true };
  if (to === ANY_DESTINATION)
    return { ok: false, reason: "signed for any node, which only the membership route accepts" };
  return {
    ok: false,
    reason: `signed for ${to.slice(0, 64)}, not for this node (${self}): replayed from another node?`,
  };
}

/** Checks, in order: headers present and well-formed, clock skew, destination, signature, then replay. */
export function verifyRequest(opts: {
  secret: string;
  /** This node's id, and whether the route accepts ANY_DESTINATION. */
  self: string;
  anyDestination: boolean;
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
  const destination = checkDestination(values.to, opts.self, opts.anyDestination);
  if (!destination.ok) return destination;

  const expected = Buffer.from(
    hmacHex({ ...opts, nodeId: values.node, to: values.to, ts: values.ts, nonce: values.nonce }),
    "hex",
  );
  const given = Buffer.from(values.signature, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: "bad signature" };
  }

  // Only authenticated requests reach the replay cache, so forgeries cannot burn nonces or fill it.
  const outcome = opts.replay.record(values.node, values.nonce, ts, opts.now);
  if (outcome !== "fresh") return { ok: false, reason: REPLAY_REASONS[outcome] };
  return { ok: true, nodeId: values.node };
}
