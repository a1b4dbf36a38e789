import { deriveTiming } from "../../src/config/timing.ts";
import { ConsensusRuntime } from "../../src/consensus/runtime.ts";
import type { CommandDefinition } from "../../src/consensus/state-machine.ts";
import type { Db } from "../../src/db/client.ts";
import { TraceStore } from "../../src/db/traces.ts";
import { createLogger } from "../../src/observability/log.ts";
import { Metrics } from "../../src/observability/metrics.ts";

/** A real one-voter consensus runtime over `db`, started, leading and holding its lease. */
export async function startSingleVoter(
  db: Db,
  commands: readonly CommandDefinition<unknown>[],
): Promise<ConsensusRuntime> {
  const runtime = new ConsensusRuntime({
    nodeId: "n1",
    voters: new Map([["n1", "127.0.0.1:1"]]),
    timing: deriveTiming("lan"),
    secret: "s".repeat(32),
    db,
    traces: new TraceStore(db),
    log: createLogger("error", {}, () => true),
    metrics: new Metrics(),
    commands,
  });
  runtime.start();
  await waitForLease(runtime);
  return runtime;
}

/** Until the runtime leads with its lease and has committed an entry of its term (it may serve reads). */
export async function waitForLease(runtime: ConsensusRuntime): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!runtime.raft.readIndex().ok) {
    if (Date.now() > deadline) throw new Error("the single voter never led");
    await Bun.sleep(10);
  }
}
