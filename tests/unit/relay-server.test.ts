import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import type { ServerWebSocket } from "bun";
import { RelayClient } from "../../src/net/relay/client.ts";
import { BODY_CHUNK_BYTES, type Lane } from "../../src/net/relay/frames.ts";
import { type RelayConnection, RelayServer } from "../../src/net/relay/server.ts";
import { createLogger } from "../../src/observability/log.ts";
import { waitFor } from "../integration/harness.ts";

/** A relay lane as Bun's server hands it to the relay: what was sent down it is kept, and closing it tells the relay. */
function lane(relay: RelayServer, node: string, which: Lane) {
  const sent: Array<string | Uint8Array> = [];
  const ws = {
    data: { relay: true, node, lane: which },
    send: (message: string | Uint8Array) => {
      sent.push(message);
      return typeof message === "string" ? message.length : message.byteLength;
    },
    // As Bun does, the relay hears of the close later, not inside the call.
    close: () => setTimeout(() => relay.websocket.close(ws), 0),
  } as unknown as ServerWebSocket<RelayConnection>;
  relay.websocket.open(ws);
  /** The first request's header, once it has gone down this lane (the relay reads the peer's body first). */
  const header = async () => {
    const text = await waitFor(() => sent.find((m) => typeof m === "string"), 2_000, `a request down ${which}`);
    return JSON.parse(text as string) as { id: number; path: string };
  };
  return { ws, sent, header };
}

/** Settles with the answer, or "waiting" if it has not come within `ms` (a lost answer waits a minute). */
const within = (answer: Promise<Response>, ms: number) =>
  Promise.race([answer, new Promise<"waiting">((resolve) => setTimeout(() => resolve("waiting"), ms))]);

const relayServer = () =>
  new RelayServer({
    timeoutMs: 60_000,
    maxPending: 16,
    log: createLogger("error"),
    relaysOf: (node) => (node === "n8" ? ["n2", "n3"] : []),
  });
const peerRequest = (path: string) => new Request(`http://relay${path}`, { headers: { "x-p2p-relay-to": "n9" } });

describe("the relay's side of a node behind NAT", () => {
  test("a request for a node this relay does not carry is refused, naming the relays gossiped for it", async () => {
    const relay = relayServer();
    lane(relay, "n9", "control");
    const elsewhere = await relay.forward("n8", peerRequest("/status"));
    expect(elsewhere.status).toBe(502);
    expect(await elsewhere.json()).toMatchObject({
      error: "no_relay_route",
      message: "this node relays nothing for n8; it is reached through n2, n3",
    });
    const unknown = await relay.forward("n7", peerRequest("/status"));
    expect(((await unknown.json()) as { message: string }).message).toMatch(/no relay of it is known$/);
  });

  test("an answer down the lane is the peer's response, body and all", async () => {
    const relay = relayServer();
    const control = lane(relay, "n9", "control");
    const answer = relay.forward("n9", peerRequest("/peer/manifest/blobs"));
    const { id, path } = await control.header();
    expect(path).toBe("/peer/manifest/blobs");
    relay.websocket.message(control.ws, JSON.stringify({ id, bytes: 5, status: 200, headers: [["x-a", "b"]] }));
    relay.websocket.message(control.ws, Buffer.from("hello"));
    const response = await answer;
    expect(response.status).toBe(200);
    expect(response.headers.get("x-a")).toBe("b");
    expect(await response.text()).toBe("hello");
  });

  test("a file request takes the bulk lane, and fails at once when that lane closes while the control lane stays", async () => {
    const relay = relayServer();
    const control = lane(relay, "n9", "control");
    const bulk = lane(relay, "n9", "bulk");
    const answer = relay.forward("n9", peerRequest(`/peer/files/${"a".repeat(64)}`));
    await bulk.header();
    expect(control.sent.length).toBe(0);
    bulk.ws.close();
    const response = await within(answer, 1_000);
    expect(response).not.toBe("waiting");
    expect((response as Response).status).toBe(502);
    expect(((await (response as Response).json()) as { error: string }).error).toBe("relay_lost");
    expect(relay.nodes()).toEqual(["n9"]);
  });

  test("requests down a lane replaced by a newer connection fail at once; the next goes down the new one", async () => {
    const relay = relayServer();
    const old = lane(relay, "n9", "control");
    const lost = relay.forward("n9", peerRequest("/peer/manifest/blobs"));
    await old.header();
    const fresh = lane(relay, "n9", "control");
    const response = await within(lost, 1_000);
    expect(response).not.toBe("waiting");
    expect((response as Response).status).toBe(502);
    void relay.forward("n9", peerRequest("/peer/manifest/blobs"));
    await fresh.header();
    expect(old.sent.length).toBe(1);
  });

  test("a body larger than one message streams to the peer as its messages come, whole", async () => {
    const relay = relayServer();
    const bulk = lane(relay, "n9", "bulk");
    const answer = relay.forward("n9", peerRequest(`/peer/files/${"b".repeat(64)}`));
    const { id } = await bulk.header();
    const body = randomBytes(2 * BODY_CHUNK_BYTES + 1000);
    relay.websocket.message(bulk.ws, JSON.stringify({ id, bytes: body.byteLength, status: 200, headers: [] }));
    relay.websocket.message(bulk.ws, body.subarray(0, BODY_CHUNK_BYTES));
    const response = await answer; // given at the header: the peer reads while the rest comes
    relay.websocket.message(bulk.ws, body.subarray(BODY_CHUNK_BYTES, 2 * BODY_CHUNK_BYTES));
    relay.websocket.message(bulk.ws, body.subarray(2 * BODY_CHUNK_BYTES));
    expect(Buffer.from(await response.arrayBuffer()).equals(body)).toBe(true);
  });

  test("a streamed body cut short by its lane closing is an error to the peer, never a short body", async () => {
    const relay = relayServer();
    const bulk = lane(relay, "n9", "bulk");
    const answer = relay.forward("n9", peerRequest(`/peer/files/${"c".repeat(64)}`));
    const { id } = await bulk.header();
    relay.websocket.message(bulk.ws, JSON.stringify({ id, bytes: 3 * BODY_CHUNK_BYTES, status: 200, headers: [] }));
    relay.websocket.message(bulk.ws, Buffer.alloc(BODY_CHUNK_BYTES));
    const response = await answer;
    bulk.ws.close();
    await expect(response.arrayBuffer()).rejects.toThrow("closed mid-answer");
  });

  test("over real lanes, a node behind NAT answers with a body larger than a WebSocket message may be", async () => {
    const relay = relayServer();
    const served = Bun.serve<RelayConnection>({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request, server) => {
        const lane = new URL(request.url).searchParams.get("lane") as Lane;
        return server.upgrade(request, { data: { relay: true, node: "n9", lane } })
          ? undefined
          : new Response("not an upgrade", { status: 400 });
      },
      websocket: relay.websocket,
    });
    const file = randomBytes(20 * 1024 * 1024); // a Bun WebSocket server closes a lane on a message over 16 MiB
    const client = new RelayClient({
      self: "n9",
      secret: "s".repeat(32),
      candidates: () => [{ id: "n1", address: `127.0.0.1:${served.port}`, alive: true, nat: false, rttMs: 1 }],
      handle: async (request) =>
        new URL(request.url).pathname.startsWith("/peer/files/") ? new Response(file) : new Response("small"),
      onChange: () => {},
      log: createLogger("error"),
      trace: () => {},
    });
    try {
      client.start();
      await waitFor(() => client.status()[0]?.lanes.length === 2, 5_000, "both lanes open");
      const response = await relay.forward("n9", peerRequest(`/peer/files/${"d".repeat(64)}`));
      expect(response.status).toBe(200);
      expect(Buffer.from(await response.arrayBuffer()).equals(file)).toBe(true);
      const small = await relay.forward("n9", peerRequest("/peer/manifest/blobs"));
      expect(await small.text()).toBe("small");
      expect(client.status()[0]?.lanes.length).toBe(2);
    } finally {
      client.stop();
      served.stop(true);
    }
  });
});
