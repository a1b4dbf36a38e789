import * as v from "valibot";

/**
 * What travels over a relay connection, in binary WebSocket frames: a 4-byte length, a JSON header, then the body's
 * bytes. The relay sends requests (what a peer sent it for the node behind NAT), the node answers with responses
 * that carry the request's id.
 */
export interface RelayRequest {
  id: number;
  method: string;
  /** Path and query, as the sender signed them. */
  path: string;
  headers: Array<[string, string]>;
}

export interface RelayResponse {
  id: number;
  status: number;
  headers: Array<[string, string]>;
}

const MAX_HEADER_BYTES = 64 * 1024;

export function encodeFrame(header: RelayRequest | RelayResponse, body: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const frame = new Uint8Array(4 + head.byteLength + body.byteLength);
  new DataView(frame.buffer).setUint32(0, head.byteLength);
  frame.set(head, 4);
  frame.set(body, 4 + head.byteLength);
  return frame;
}

/** The header and body of a frame, or null for a frame that is not one (a peer's bug or garbage: dropped). */
export function decodeFrame(frame: Uint8Array): { header: Record<string, unknown>; body: Uint8Array } | null {
  if (frame.byteLength < 4) return null;
  const length = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0);
  if (length > MAX_HEADER_BYTES || 4 + length > frame.byteLength) return null;
  try {
    const header = JSON.parse(new TextDecoder().decode(frame.subarray(4, 4 + length)));
    if (header === null || typeof header !== "object" || !Number.isSafeInteger(header.id)) return null;
    return { header, body: frame.subarray(4 + length) };
  } catch {
    return null;
  }
}

export function isRelayRequest(h: Record<string, unknown>): h is Record<string, unknown> & RelayRequest {
  return typeof h.method === "string" && typeof h.path === "string" && h.path.startsWith("/") && pairs(h.headers);
}

export function isRelayResponse(h: Record<string, unknown>): h is Record<string, unknown> & RelayResponse {
  return Number.isInteger(h.status) && (h.status as number) >= 100 && (h.status as number) < 600 && pairs(h.headers);
}

function pairs(x: unknown): boolean {
  return (
    Array.isArray(x) &&
    x.length <= 256 &&
    x.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === "string" && typeof p[1] === "string")
  );
}

/** Which connection a request takes: file transfers have their own, so heartbeats never wait behind a download. */
export type Lane = "control" | "bulk";

export function laneOf(path: string): Lane {
  return path.startsWith("/peer/files/") ? "bulk" : "control";
}

/** The header a sender adds to a request it sends through a relay: the node it is for. */
export const RELAY_TO_HEADER = "x-p2p-relay-to";
/** The path a node behind NAT opens its relay connections on (a signed WebSocket upgrade). */
export const RELAY_CONNECT_PATH = "/peer/relay";

export const relayConnectQuerySchema = v.strictObject({ lane: v.picklist(["control", "bulk"]) });
