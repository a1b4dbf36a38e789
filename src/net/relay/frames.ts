import * as v from "valibot";

/**
 * What travels over a relay connection: each request (relay to the node behind NAT) and each response (back) is
 * a text message with its JSON header and, when its body is not empty (`bytes` > 0), right after it on the same
 * lane the body: a request's in one binary message (peers' bodies are far smaller than a message may be), a
 * response's in binary messages of at most BODY_CHUNK_BYTES. No other message of that lane comes between a
 * header and the end of its body; the body is never copied into a frame of its own.
 */
export interface RelayRequest {
  id: number;
  /** The body's length: 0 means no body message follows. */
  bytes: number;
  method: string;
  /** Path and query, as the sender signed them. */
  path: string;
  headers: Array<[string, string]>;
}

export interface RelayResponse {
  id: number;
  bytes: number;
  status: number;
  headers: Array<[string, string]>;
}

const MAX_HEADER_CHARS = 64 * 1024;

/**
 * The most of a response body one lane message carries. A Bun WebSocket server closes a lane on a message over
 * 16 MiB, so a whole file (or a large manifest) goes as many; a 4 MiB piece of a file, what data sync asks for, is
 * one, as one message is cheapest per byte.
 */
export const BODY_CHUNK_BYTES = 4 * 1024 * 1024;

/** A header message, or null for one that is not (a peer's bug or garbage: dropped). */
export function parseHeader(text: string): Record<string, unknown> | null {
  if (text.length > MAX_HEADER_CHARS) return null;
  try {
    const header = JSON.parse(text);
    const ok = header !== null && typeof header === "object" && Number.isSafeInteger(header.id);
    return ok && Number.isSafeInteger(header.bytes) && header.bytes >= 0 ? header : null;
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
/** Headers that describe one HTTP hop, not the request or its answer: never passed on. */
export const HOP_BY_HOP_HEADERS = ["host", "connection", "content-length", "transfer-encoding", "keep-alive"];
/** Set by a member that passed a request on to one of the node's relays: that relay passes it on no further. */
export const RELAY_HOP_HEADER = "x-p2p-relay-hop";
/** The path a node behind NAT opens its relay connections on (a signed WebSocket upgrade). */
export const RELAY_CONNECT_PATH = "/peer/relay";

export const relayConnectQuerySchema = v.strictObject({ lane: v.picklist(["control", "bulk"]) });
