import type { ServerWebSocket } from "bun";
import type { Logger } from "../../observability/log.ts";
import { errorResponse } from "../errors.ts";
import { VERIFIED_PEER_HEADER } from "../gate.ts";
import {
  BODY_CHUNK_BYTES,
  HOP_BY_HOP_HEADERS,
  isRelayResponse,
  type Lane,
  laneOf,
  parseHeader,
  RELAY_HOP_HEADER,
  RELAY_TO_HEADER,
  type RelayResponse,
} from "./frames.ts";

/** What a relay connection carries in Bun's WebSocket data: the node behind NAT it serves, and which lane. */
export interface RelayConnection {
  relay: true;
  node: string;
  lane: Lane;
  /** The answer whose body messages come next on this lane. */
  body?: IncomingBody | null;
}

/**
 * An answer's body arriving in messages. One message's worth (a piece of a file, any JSON) is gathered and
 * answered whole, its request still waiting under its deadline; a larger body (a whole file) is streamed to the
 * peer as its messages come, the response already given.
 */
interface IncomingBody {
  header: RelayResponse;
  remaining: number;
  parts: Uint8Array[];
  /** Larger bodies: the peer's response stream (null once the peer went away). */
  stream: ReadableStreamDefaultController<Uint8Array> | null;
}

/** A body in several messages: streamed on to the peer as they come, rather than gathered. */
const streamed = (body: IncomingBody) => body.header.bytes > BODY_CHUNK_BYTES;

interface Pending {
  node: string;
  /** The lane the request went down: its answer comes back on it, or never once that lane closes. */
  ws: ServerWebSocket<RelayConnection>;
  resolve: (response: Response) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Headers that describe this hop, not the request: the node behind NAT gets its own. */
const HOP_HEADERS = new Set([...HOP_BY_HOP_HEADERS, RELAY_TO_HEADER, RELAY_HOP_HEADER, VERIFIED_PEER_HEADER]);

/**
 * The relay's side: nodes behind NAT keep connections open to it (a control lane and a bulk lane each), and a
 * peer's request for such a node, sent here with `x-p2p-relay-to`, goes down the matching lane and its answer
 * comes back. The relay checks nothing of the request: the node behind NAT checks its signature as it would
 * any. Bounded: requests waiting for answers, and how long each waits.
 */
export class RelayServer {
  private readonly lanes = new Map<string, Partial<Record<Lane, ServerWebSocket<RelayConnection>>>>();
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  readonly stats = { requests: 0, failed: 0, bytesToNat: 0, bytesFromNat: 0 };

  constructor(
    private readonly opts: {
      timeoutMs: number;
      maxPending: number;
      log: Logger;
      /** The relays gossiped for a node behind NAT: named to a sender that came to the wrong one. */
      relaysOf: (node: string) => string[];
    },
  ) {}

  readonly websocket = {
    open: (ws: ServerWebSocket<RelayConnection>) => {
      const lanes = this.lanes.get(ws.data.node) ?? {};
      lanes[ws.data.lane]?.close(1000, "replaced by a newer connection");
      lanes[ws.data.lane] = ws;
      this.lanes.set(ws.data.node, lanes);
      this.opts.log.info("relaying for a node behind NAT", { for: ws.data.node, lane: ws.data.lane });
    },
    message: (ws: ServerWebSocket<RelayConnection>, message: string | Buffer) => {
      if (typeof message !== "string") {
        this.bodyPart(ws, message);
        return;
      }
      this.endBody(ws, "the node began another answer before this one's body was whole");
      const header = parseHeader(message);
      if (!header || !isRelayResponse(header)) return;
      if (header.bytes === 0) {
        this.answer(ws, header, new Uint8Array(0));
        return;
      }
      const body: IncomingBody = { header, remaining: header.bytes, parts: [], stream: null };
      ws.data.body = body;
      if (!streamed(body)) return;
      const waiting = this.waiting(ws, header.id);
      if (!waiting) return;
      const stream = new ReadableStream<Uint8Array>({
        start: (controller) => {
          body.stream = controller;
        },
        cancel: () => {
          body.stream = null;
        },
      });
      waiting.resolve(new Response(stream, { status: header.status, headers: header.headers }));
    },
    close: (ws: ServerWebSocket<RelayConnection>) => {
      this.endBody(ws, `the relay's ${ws.data.lane} lane to ${ws.data.node} closed mid-answer`);
      // Requests down this lane get no answer now, whether the node keeps another lane or this one was replaced.
      for (const [id, p] of this.pending) {
        if (p.ws !== ws) continue;
        this.pending.delete(id);
        clearTimeout(p.timer);
        this.stats.failed++;
        p.resolve(errorResponse(502, "relay_lost", `the relay's ${ws.data.lane} lane to ${p.node} closed`));
      }
      const lanes = this.lanes.get(ws.data.node);
      if (lanes?.[ws.data.lane] !== ws) return;
      delete lanes[ws.data.lane];
      if (!lanes.control && !lanes.bulk) this.lanes.delete(ws.data.node);
      this.opts.log.info("relay connection closed", { for: ws.data.node, lane: ws.data.lane });
    },
  };

  /** The request this answer is for, no longer waiting (null: it timed out, or it is not this node's). */
  private waiting(ws: ServerWebSocket<RelayConnection>, id: number): Pending | null {
    const waiting = this.pending.get(id);
    if (!waiting || waiting.node !== ws.data.node) return null;
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    return waiting;
  }

  /** A whole answer: to the peer waiting for it, if it still waits. */
  private answer(ws: ServerWebSocket<RelayConnection>, header: RelayResponse, body: Uint8Array): void {
    const waiting = this.waiting(ws, header.id);
    if (!waiting) return;
    const content = header.status === 204 || header.status === 304 ? null : bodyOf(body);
    waiting.resolve(new Response(content, { status: header.status, headers: header.headers }));
  }

  /** One message of the body arriving on this lane: gathered, or on to the peer's stream; past the end, refused. */
  private bodyPart(ws: ServerWebSocket<RelayConnection>, part: Uint8Array): void {
    const body = ws.data.body;
    if (!body) return;
    if (part.byteLength > body.remaining) {
      this.endBody(ws, `${part.byteLength} bytes came where ${body.remaining} were left of the answer`);
      return;
    }
    body.remaining -= part.byteLength;
    this.stats.bytesFromNat += part.byteLength;
    const whole = body.remaining === 0;
    if (whole) ws.data.body = null;
    if (streamed(body)) {
      this.toStream(body, part);
      if (whole) body.stream?.close();
      return;
    }
    body.parts.push(part);
    if (whole)
      this.answer(ws, body.header, body.parts.length === 1 ? (body.parts[0] as Uint8Array) : Buffer.concat(body.parts));
  }

  private toStream(body: IncomingBody, part: Uint8Array): void {
    try {
      body.stream?.enqueue(part);
    } catch {
      body.stream = null; // the peer's response is closed already: the rest of the body goes nowhere
    }
  }

  /** The answer arriving on this lane cannot be whole: its peer gets an error, never a short body. */
  private endBody(ws: ServerWebSocket<RelayConnection>, why: string): void {
    const body = ws.data.body;
    if (!body) return;
    ws.data.body = null;
    this.stats.failed++;
    const waiting = this.waiting(ws, body.header.id);
    waiting?.resolve(errorResponse(502, "relay_lost", why));
    try {
      body.stream?.error(new Error(why));
    } catch {
      // the peer's response is closed already
    }
  }

  /** Whether this relay holds a lane to `node` now. */
  carries(node: string): boolean {
    return this.lanes.has(node);
  }

  /** The nodes this relay serves now. */
  nodes(): string[] {
    return [...this.lanes.keys()].sort();
  }

  /** Requests sent down a lane whose answer has not come back. */
  queueDepth(): number {
    return this.pending.size;
  }

  /** Sends a peer's request to the node behind NAT and returns its answer (or why it could not). */
  async forward(node: string, request: Request): Promise<Response> {
    const url = new URL(request.url);
    const lanes = this.lanes.get(node);
    const ws = lanes?.[laneOf(url.pathname)] ?? lanes?.control;
    if (!ws) {
      const relays = this.opts.relaysOf(node);
      const where = relays.length > 0 ? `it is reached through ${relays.join(", ")}` : "no relay of it is known";
      return errorResponse(502, "no_relay_route", `this node relays nothing for ${node.slice(0, 64)}; ${where}`);
    }
    if (this.pending.size >= this.opts.maxPending) {
      return errorResponse(503, "relay_busy", `${this.pending.size} relayed requests are waiting for answers`);
    }
    const body = new Uint8Array(await request.arrayBuffer());
    const headers = [...request.headers].filter(([k]) => !HOP_HEADERS.has(k.toLowerCase()));
    const id = ++this.seq;
    this.stats.requests++;
    this.stats.bytesToNat += body.byteLength;
    return new Promise<Response>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.stats.failed++;
        resolve(errorResponse(504, "relay_timeout", `${node} did not answer within ${this.opts.timeoutMs} ms`));
      }, this.opts.timeoutMs);
      this.pending.set(id, { node, ws, resolve, timer });
      const path = url.pathname + url.search;
      const head = ws.send(JSON.stringify({ id, bytes: body.byteLength, method: request.method, path, headers }));
      const sent = head === 0 || body.byteLength === 0 ? head : ws.send(body);
      if (sent === 0) {
        this.pending.delete(id);
        clearTimeout(timer);
        this.stats.failed++;
        resolve(errorResponse(502, "relay_lost", `the relay's connection to ${node} dropped the request`));
      }
    });
  }

  stop(): void {
    for (const lanes of this.lanes.values()) for (const ws of Object.values(lanes)) ws?.close(1001, "relay stopping");
  }
}

/** Bodies this large go out as they came, not copied. */
const STREAMED_BYTES = 64 * 1024;

/**
 * The answer's body for the response. `new Response(bytes)` copies them (about 1 ms of the relay's event loop per
 * 4 MiB piece, and 4 MiB more to collect); a direct stream writes the message's own buffer, chunked, as the node
 * serves a file directly.
 */
function bodyOf(bytes: Uint8Array): Uint8Array | ReadableStream {
  if (bytes.byteLength < STREAMED_BYTES) return bytes;
  return new ReadableStream({
    type: "direct",
    pull(controller) {
      controller.write(bytes);
      controller.close();
    },
  });
}
