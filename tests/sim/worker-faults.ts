/** Simulated workers' failures, shared by the work-queue and training-run simulations. */
export interface FaultyWorker {
  up: boolean;
  /** Until then the worker neither claims nor reports. */
  stalledUntil: number;
  holds: Map<string, unknown>;
  waiting: unknown[];
}

/** Stalls one worker past its lease (it reports late, anyway), or crashes one (its claims are forgotten). */
export function injectWorkerFault(
  kind: "stall" | "crash",
  workers: readonly FaultyWorker[],
  random: () => number,
  now: number,
  leaseMs: number,
): void {
  const w = workers[Math.floor(random() * workers.length)];
  if (!w) return;
  if (kind === "stall") {
    w.stalledUntil = now + leaseMs * (1 + random() * 2);
    return;
  }
  w.up = false;
  w.holds.clear();
  w.waiting.length = 0;
}

/** Brings every crashed worker back, with nothing held. */
export function reviveWorkers(workers: readonly FaultyWorker[]): void {
  for (const w of workers) w.up = true;
}
