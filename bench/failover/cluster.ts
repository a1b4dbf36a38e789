/**
 * What the leadership benchmarks (failover, commit) need from a running 3-voter Raft cluster, whichever
 * system it is, and the failover measurement itself.
 */
import { sleep, waitFor } from "../lib.ts";

export interface RaftCluster {
  readonly size: number;
  /** The member every live member agrees is leader (and which says so itself), or null. */
  leader(): Promise<number | null>;
  /** Writes key=value through member `i`: null once committed (2xx), else a short error label. */
  put(i: number, key: string, value: string, timeoutMs: number): Promise<string | null>;
  /** Member `i`'s event-loop lag p99 in ms, where the system exposes it (ours: GET /metrics). */
  eventLoopLagMs?(i: number): Promise<number | null>;
  /** Throws, with the process's stderr, if a member that should be running has exited. */
  assertRunning(): Promise<void>;
  /** SIGKILLs member `i`. */
  kill(i: number): void;
  /** Kills every member, waits until they have exited, removes their data. */
  stop(): Promise<void>;
}

export interface RaftSystem {
  readonly label: string;
  /** Why it cannot run here (binary missing), or null. */
  missing(): Promise<string | null>;
  /** Starts 3 voters for trial `trial` (fresh ports and data each trial). */
  start(trial: number): Promise<RaftCluster>;
}

const LEADER_DEADLINE_MS = 60_000;
/** Steady state before the kill: heartbeats flowing, start-up work (etcd publishes attributes) done. */
const SETTLE_MS = 1_000;
const FAILOVER_DEADLINE_MS = 60_000;
/** A fresh write is sent to each survivor this often... */
export const ATTEMPT_EVERY_MS = 50;
/** ...and each is given up after this long. */
export const ATTEMPT_TIMEOUT_MS = 500;

/** Waits until the members agree on a leader that has committed a write; returns it. */
export async function stableLeader(c: RaftCluster): Promise<number> {
  let leader: number | null = null;
  const ready = async (): Promise<boolean> => {
    await c.assertRunning();
    leader = await c.leader();
    return leader !== null && (await c.put(leader, "bench", "ready", 2_000)) === null;
  };
  await waitFor(ready, LEADER_DEADLINE_MS, "an agreed leader that commits a write", 100);
  if (leader === null) throw new Error("unreachable: no leader after waitFor");
  return leader;
}

export interface Failover {
  victim: number;
  /** From the kill until the first write through a survivor came back committed. */
  ms: number;
}

/**
 * Kills the leader and times until a write through one of the survivors is committed. Every
 * ATTEMPT_EVERY_MS a fresh write goes to each survivor (each abandoned after ATTEMPT_TIMEOUT_MS), so a
 * write stuck on the dead leader does not hide a new leader for up to the timeout.
 */
export async function measureFailover(c: RaftCluster): Promise<Failover> {
  await stableLeader(c);
  await sleep(SETTLE_MS);
  const victim = await stableLeader(c);
  const survivors = Array.from({ length: c.size }, (_, i) => i).filter((i) => i !== victim);

  c.kill(victim);
  const t0 = performance.now();
  let done = false;
  let n = 0;
  try {
    return await new Promise<Failover>((resolve, reject) => {
      const attempt = async (i: number) => {
        const error = await c.put(i, "bench", `after-kill-${n++}`, ATTEMPT_TIMEOUT_MS);
        if (error === null && !done) {
          done = true;
          resolve({ victim, ms: performance.now() - t0 });
        }
      };
      const tick = () => {
        if (done) return;
        if (performance.now() - t0 > FAILOVER_DEADLINE_MS) {
          done = true;
          c.assertRunning()
            .then(() => reject(new Error(`no write committed within ${FAILOVER_DEADLINE_MS} ms of the kill`)))
            .catch(reject);
          return;
        }
        for (const i of survivors) void attempt(i);
        setTimeout(tick, ATTEMPT_EVERY_MS);
      };
      tick();
    });
  } finally {
    done = true;
  }
}
