import { RELAY_TO_HEADER } from "../../src/net/relay/frames.ts";
import { signRequest } from "../../src/net/signing.ts";

/** A GET from the peer "n3" to n2, signed with the cluster secret: straight to `address`, or through the relay there. */
export async function peerGet(opts: {
  secret: string;
  address: string;
  relayed: boolean;
  pathWithQuery: string;
  headers?: Record<string, string>;
}): Promise<Response> {
  const { pathWithQuery } = opts;
  const signed = signRequest({
    secret: opts.secret,
    nodeId: "n3",
    method: "GET",
    pathWithQuery,
    body: "",
    now: Date.now(),
    to: "n2",
  });
  const res = await fetch(`http://${opts.address}${pathWithQuery}`, {
    headers: { ...opts.headers, ...signed, ...(opts.relayed ? { [RELAY_TO_HEADER]: "n2" } : {}) },
    signal: AbortSignal.timeout(30_000),
  });
  if (!res.ok)
    throw new Error(`${opts.relayed ? "relayed" : "direct"} ${pathWithQuery}: ${res.status} ${await res.text()}`);
  return res;
}
