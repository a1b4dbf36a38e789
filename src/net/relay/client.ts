import type { Logger } from "../../observability/log.ts";
import type { TraceRecord } from "../../observability/trace.ts";
import { signRequest } from "../signing.ts";
import { BodyPool, type PooledBody, readBody } from "./body.ts";
import { type RelayCandidate, rankRelays } from "./choice.ts";
import { BODY_CHUNK_BYTES, isRelayRequest, type Lane, parseHeader, RELAY_CONNECT_PATH } from "./frames.ts";

interface Held {
  id: string;
  address: string;
  lanes: Partial<Record<Lane, WebSocket>>;
  /** How long the control lane took to open, a round trip and a half: relays are chosen by it. */
  openMs: number | null;
}

/** Relays a node behind NAT keeps: one may die while the other still carries its traffic. */
const RELAYS_WANTED = 2;
const MAINTAIN_MS = 500;
/** A relay whose connection failed is tried again after this long, with jitter. */
const RETRY_MS = 2_000;
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/**
 * The side of a node behind NAT: it keeps signed outbound connections (a control lane and a bulk lane) to two
 * public members, and answers each request that comes down them through its own router, which checks the
 * sender's signature as for any request. Peers reach it through those relays, which its gossip names.
 */
export class RelayClient {
  private readonly held = new Map<string, Held>();
  private readonly retryAt = new Map<string, number>();
  private readonly lastOpenMs = new Map<string, number>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private announced = "";
  private readonly pool = new BodyPool();
  /** Each lane's answer being sent: the next waits for it, so no two answers' body messages interleave. */
  private readonly sending = new WeakMap<WebSocket, Promise<void>>();

  constructor(
    private readonly opts: {
      self: string;
      secret: string;
      candidates: () => RelayCandidate[];
      /** This node's own request handler (signature checks, then the router). */
      handle: (request: Request) => Promise<Response>;
      /** The relays it can be reached through changed: gossip them. */
      onChange: () => void;
      log: Logger;
      /** Each relay's transitions (connecting, connected, dropped) with their cause, for `trace --machine relay`. */
      trace: (record: TraceRecord) => void;
      random?: () => number;
    },
  ) {}

  start(): void {
    this.maintain();
    this.timer = setInterval(() => this.maintain(), MAINTAIN_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const h of this.held.values()) for (const ws of Object.values(h.lanes)) ws?.close(1001, "node stopping");
    this.held.clear();
  }

  /** The relays whose control lane is open, nearest first: what this node gossips. */
  relays(): string[] {
    return [...this.held.values()]
      .filter((h) => h.lanes.control?.readyState === WebSocket.OPEN)
      .sort((a, b) => (a.openMs ?? Infinity) - (b.openMs ?? Infinity))
      .map((h) => h.id);
  }

  status(): Array<{ id: string; address: string; openMs: number | null; lanes: Lane[] }> {
    return [...this.held.values()].map((h) => ({
      id: h.id,
      address: h.address,
      openMs: h.openMs,
      lanes: (Object.keys(h.lanes) as Lane[]).filter((l) => h.lanes[l]?.readyState === WebSocket.OPEN),
    }));
  }

  private maintain(): void {
    const candidates = this.opts.candidates().filter((c) => c.id !== this.opts.self && !c.nat);
    const alive = new Set(candidates.filter((c) => c.alive).map((c) => c.id));
    for (const h of this.held.values()) if (!alive.has(h.id)) this.drop(h.id, "the relay is no longer alive");
    const now = Date.now();
    const fresh = rankRelays(
      candidates,
      (id) => this.held.has(id) || (this.retryAt.get(id) ?? 0) > now,
      (id) => this.lastOpenMs.get(id),
    );
    for (const c of fresh.slice(0, Math.max(0, RELAYS_WANTED - this.held.size))) this.connect(c);
    this.announce();
  }

  private connect(c: RelayCandidate): void {
    const held: Held = { id: c.id, address: c.address, lanes: {}, openMs: null };
    this.held.set(c.id, held);
    this.transition(
      c.id,
      null,
      "connecting",
      "connect",
      `fewer than ${RELAYS_WANTED} relays; ${c.id} is the nearest live public member not held (round trip ${c.rttMs === null ? "not measured yet" : `${c.rttMs} ms`})`,
    );
    const started = performance.now();
    for (const lane of ["control", "bulk"] as const) {
      const path = `${RELAY_CONNECT_PATH}?lane=${lane}`;
      const headers = signRequest({
        secret: this.opts.secret,
        nodeId: this.opts.self,
        method: "GET",
        pathWithQuery: path,
        body: "",
        now: Date.now(),
        to: c.id,
      });
      let ws: WebSocket;
      try {
        ws = new WebSocket(`ws://${c.address}${path}`, { headers } as unknown as string[]);
      } catch (e) {
        this.drop(c.id, `cannot connect: ${(e as Error).message}`);
        return;
      }
      ws.binaryType = "arraybuffer";
      held.lanes[lane] = ws;
      ws.onopen = () => {
        if (lane !== "control") return;
        held.openMs = Math.round(performance.now() - started);
        this.lastOpenMs.set(c.id, held.openMs);
        this.opts.log.info("relay connected", { relay: c.id, openMs: held.openMs });
        this.transition(c.id, "connecting", "connected", "open", `control lane open in ${held.openMs} ms`);
        this.announce();
      };
      // A request is its header (text) then its body (binary), back to back on the lane.
      let header: Record<string, unknown> | null = null;
      ws.onmessage = (event) => {
        if (typeof event.data === "string") {
          const next = parseHeader(event.data);
          if (next?.bytes === 0) void this.answer(ws, next, new Uint8Array(0));
          else header = next;
          return;
        }
        const request = header;
        header = null;
        if (request && event.data instanceof ArrayBuffer) void this.answer(ws, request, new Uint8Array(event.data));
      };
      ws.onclose = () => this.drop(c.id, `${lane} lane closed`);
      ws.onerror = () => this.drop(c.id, `${lane} lane failed`);
    }
  }

  private drop(id: string, reason: string): void {
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    const from = held.openMs !== null ? "connected" : "connecting";
    for (const ws of Object.values(held.lanes)) if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, reason);
    this.retryAt.set(id, Date.now() + RETRY_MS * (0.5 + (this.opts.random ?? Math.random)()));
    this.opts.log.info("relay dropped", { relay: id, reason });
    this.transition(id, from, "dropped", "close", reason);
    this.announce();
  }

  private transition(relay: string, from: string | null, to: string, event: string, cause: string): void {
    this.opts.trace({ machine: "relay", instance: relay, from, to, event, cause, at: Date.now() });
  }

  private announce(): void {
    const now = this.relays().join(",");
    if (now === this.announced) return;
    this.announced = now;
    this.opts.onChange();
  }

  /** One request from the relay: through this node's own handler, and the answer back on the same lane. */
  private async answer(ws: WebSocket, header: Record<string, unknown>, requestBody: Uint8Array): Promise<void> {
    if (!isRelayRequest(header)) return;
    const { id, method, path, headers } = header;
    let status = 500;
    let out: Array<[string, string]> = [];
    let body: PooledBody = { bytes: new Uint8Array(0), release: () => {} };
    try {
      const request = new Request(`http://relayed${path}`, {
        method,
        headers,
        body: method === "GET" || method === "HEAD" ? undefined : requestBody,
      });
      const response = await this.opts.handle(request);
      const read = await readBody(response, this.pool, MAX_RESPONSE_BYTES);
      status = read ? response.status : 507;
      out = [...response.headers];
      if (read) body = read;
    } catch (e) {
      this.opts.log.warn("relayed request failed", { path, error: String(e) });
    }
    const head = JSON.stringify({ id, bytes: body.bytes.byteLength, status, headers: out });
    const sent = (this.sending.get(ws) ?? Promise.resolve())
      .then(() => sendAnswer(ws, head, body.bytes))
      .catch((e) => this.opts.log.warn("a relayed answer could not be sent", { path, error: String(e) }))
      .finally(() => body.release());
    this.sending.set(ws, sent);
    await sent;
  }
}

/**
 * The header, then the body in messages of at most BODY_CHUNK_BYTES, the event loop free between them (a
 * heartbeat on the other lane is answered meanwhile). A lane that closes midway fails the answer at the relay.
 */
async function sendAnswer(ws: WebSocket, head: string, bytes: Uint8Array): Promise<void> {
  if (ws.readyState !== WebSocket.OPEN) return;
  ws.send(head);
  for (let at = 0; at < bytes.byteLength; at += BODY_CHUNK_BYTES) {
    if (at > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(bytes.subarray(at, at + BODY_CHUNK_BYTES));
  }
}
