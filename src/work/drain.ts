import type { Db } from "../db/client.ts";
import { deleteMeta, readMeta, writeMeta } from "../db/peers.ts";

const DRAIN_KEY = "worker.drained";

/** An operator's drain survives a restart: a node drained for maintenance is still drained when it comes back. */
export function loadDrain(db: Db): string | null {
  return readMeta(db, DRAIN_KEY) ?? null;
}

export function saveDrain(db: Db, reason: string | null): void {
  if (reason === null) deleteMeta(db, DRAIN_KEY);
  else writeMeta(db, DRAIN_KEY, reason);
}
