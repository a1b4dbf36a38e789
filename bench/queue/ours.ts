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
export function startQueueCluster(): Promise<QueueCluster> {
  return startOurCluster({
    firstHost: 61,
    port: PORT,
    extraToml: `[jobs.${JOB_TYPE}]\ncommand = ["true"]\n`,
    nodeToml: `capabilities = ["${JOB_TYPE}"]\nslots = 0\n`,
  });
}
