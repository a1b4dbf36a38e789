/**
 * The heartbeat peer of bench/relay: a process of its own (as SWIM probes and Raft appends come from other members
 * than the one downloading a file), sending the small signed request `GET /peer/manifest/blobs` to n2 every 20 ms,
 * straight to an address or through a relay, and printing each round trip in ms, one per line, after a second of warming up.
 *
 *   P2P_SECRET=... bun bench/relay/heartbeat.ts <address> <direct|relayed> <samples>
 */
import { peerGet } from "./peer-get.ts";

const [address = "", path, samples] = process.argv.slice(2);
const secret = process.env.P2P_SECRET ?? "";
const EVERY_MS = 20;
/** Round trips not printed: a fresh process's first second is slow of itself (compiling, connecting). */
const WARM_UP = 50;
const pathWithQuery = "/peer/manifest/blobs";

for (let i = -WARM_UP; i < Number(samples); i++) {
  const t0 = performance.now();
  await (await peerGet({ secret, address, relayed: path === "relayed", pathWithQuery })).arrayBuffer();
  if (i >= 0) console.log((performance.now() - t0).toFixed(3));
  await Bun.sleep(EVERY_MS);
}
