import { call } from "../../src/net/client.ts";
import { ROUTES } from "../../src/net/route-table.ts";
import { stableLeader } from "../failover/cluster.ts";
import { cleanupAll, installCleanup, sleep } from "../lib.ts";
import { startQueueCluster } from "./ours.ts";
installCleanup();
const batch = Number(process.argv[2] ?? 1000);
const total = Number(process.argv[3] ?? 8000);
const q = await startQueueCluster();
try {
  const leader = await stableLeader(q.raft);
  const addr = q.addresses[leader] as string;
  console.log("leader", leader, addr);
  let running = true;
  const t0 = performance.now();
  const mon = (async () => {
    while (running) {
      const e = await Promise.all([0, 1, 2].map((i) => q.election(i)));
      const lag = await q.raft.eventLoopLagMs?.(leader);
      console.log(`${(performance.now() - t0).toFixed(0)}ms lag=${lag} roles=${e.map((x) => `${x?.role}/${x?.term}`).join(",")}`);
      await sleep(250);
    }
  })();
  let n = 0;
  while (n < total) {
    const items = Array.from({ length: batch }, (_, k) => ({ type: "noop", id: `q-${n + k}` }));
    const s = performance.now();
    try {
      const a = await call(addr, ROUTES.workBatch, { kind: "operator", token: q.token }, { body: { items }, timeoutMs: 30000 });
      console.log(`batch ${n} took ${(performance.now() - s).toFixed(0)} ms`, JSON.stringify(a).slice(-40));
    } catch (e) { console.log(`batch ${n} failed after ${(performance.now() - s).toFixed(0)} ms`, String(e)); }
    n += batch;
  }
  await sleep(3000);
  running = false;
  await mon;
} finally {
  await q.raft.stop();
  cleanupAll();
}
