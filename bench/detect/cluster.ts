/** What the detection benchmark needs from a running cluster, whichever system it is, and the measurement. */
import { sleep, waitFor } from "../lib.ts";

/** A member's state as one observer sees it, normalised across systems ("failed" in serf is "dead"). */
export type SeenState = "alive" | "dead" | "other";

export interface Cluster {
  readonly ids: readonly string[];
  /** What member `observer` sees of the others, or null when it could not be asked this time. */
  view(observer: number): Promise<Map<string, SeenState> | null>;
  /** Throws, with the process's stderr, if a member that should be running has exited. */
  assertRunning(): Promise<void>;
  /** SIGKILLs member `i` (no chance to say goodbye). */
  kill(i: number): void;
  /** Kills every member and waits until they have exited. */
  stop(): Promise<void>;
}

export interface System {
  readonly label: string;
  /** The failure detector's effective timing for a cluster of `nodes`, in words. */
  timing(nodes: number): string;
  /** Starts `nodes` members for trial `trial` (fresh ports and state each trial). */
  start(nodes: number, trial: number): Promise<Cluster>;
}

export const POLL_MS = 50;
const CONVERGE_DEADLINE_MS = 60_000;
const DETECT_DEADLINE_MS = 120_000;

/** Every member sees every other member alive. */
export async function waitConverged(c: Cluster): Promise<void> {
  const converged = async (): Promise<boolean> => {
    await c.assertRunning();
    const views = await Promise.all(c.ids.map((_, i) => c.view(i)));
    return views.every((v, i) => v !== null && c.ids.every((id, j) => j === i || v.get(id) === "alive"));
  };
  await waitFor(converged, CONVERGE_DEADLINE_MS, `all ${c.ids.length} members to see each other alive`, POLL_MS);
}

export interface Detection {
  /** When the last survivor marked the victim dead, ms after the kill. */
  allMs: number;
  /** When the first survivor did. */
  firstMs: number;
}

/** Kills member `victim` and times until every survivor, polled concurrently, marks it dead. */
export async function measureDetection(c: Cluster, victim: number): Promise<Detection> {
  const victimId = c.ids[victim];
  if (victimId === undefined) throw new Error(`no member ${victim}`);
  c.kill(victim);
  const t0 = performance.now();
  const deadline = t0 + DETECT_DEADLINE_MS;
  const survivors = c.ids.map((_, i) => i).filter((i) => i !== victim);

  const watch = async (i: number): Promise<number> => {
    for (let next = t0; ; ) {
      const seen = await c.view(i);
      const now = performance.now();
      if (seen?.get(victimId) === "dead") return now - t0;
      if (now > deadline) {
        await c.assertRunning().catch((e: unknown) => {
          throw new Error(`survivor ${c.ids[i]} failed while waiting: ${e instanceof Error ? e.message : e}`);
        });
        throw new Error(`${c.ids[i]} did not mark ${victimId} dead within ${DETECT_DEADLINE_MS} ms`);
      }
      next += POLL_MS;
      await sleep(Math.max(0, next - performance.now()));
    }
  };

  const times = await Promise.all(survivors.map(watch));
  return { allMs: Math.max(...times), firstMs: Math.min(...times) };
}
