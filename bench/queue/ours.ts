/**
 * Our side of the queue benchmark: the compiled node binary, 3 voters (timing "lan") on 127.0.0.61-63,
 * with a no-op job type that every node can run (capability "noop") but none takes itself (slots = 0),
 * so the only workers are the benchmark's own signed HTTP clients.
 */
import { type OurCluster, startOurCluster } from "../failover/ours.ts";

const PORT = 8971;
export const JOB_TYPE = "noop";

export type QueueCluster = OurCluster;

/** Every node can run the no-op type (so it counts as runnable) but takes no slots itself. */
export function startQueueCluster(workers: number): Promise<QueueCluster> {
  // The bench's workers w0.. sign as configured nodes (a leader refuses peers it does not know); nothing listens
  // at their addresses, and they are never voters.
  const extraNodes = Array.from(
    { length: workers },
    (_, w) => `[[nodes]]\nid = "w${w}"\naddress = "127.0.0.60:${PORT + 1 + w}"\nvoter = false\n`,
  ).join("\n");
  return startOurCluster({
    firstHost: 61,
    port: PORT,
    extraToml: `[jobs.${JOB_TYPE}]\ncommand = ["true"]\n`,
    nodeToml: `capabilities = ["${JOB_TYPE}"]\nslots = 0\n`,
    extraNodes,
  });
}
