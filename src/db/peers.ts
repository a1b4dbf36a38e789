import { eq } from "drizzle-orm";
import type { Member } from "../membership/swim.ts";
import { isCounter } from "../net/bounds.ts";
import type { NodeInfo } from "../shared/node-info.ts";
import type { Db } from "./client.ts";
import { nodeMeta, peers } from "./schema.ts";

/** The peers this node knew; a row whose numbers are out of range is left out (gossip brings the peer back). */
export function loadPeers(db: Db): Member[] {
  return db
    .select()
    .from(peers)
    .all()
    .filter((p) => isCounter(p.incarnation) && Number.isFinite(p.stateSince) && Number.isFinite(p.lastSeenAt))
    .map((p) => ({
      id: p.id,
      address: p.address,
      state: p.state,
      incarnation: p.incarnation,
      stateSince: p.stateSince,
      lastSeenAt: p.lastSeenAt,
      infoVersion: 0,
      info: (p.info as NodeInfo | null) ?? null,
      rttMs: null,
    }));
}

/** Upserts many peers in one short transaction. */
export function savePeers(db: Db, members: Iterable<Member>): void {
  db.transaction((tx) => {
    for (const m of members) {
      const row = {
        id: m.id,
        address: m.address,
        incarnation: m.incarnation,
        state: m.state,
        stateSince: m.stateSince,
        lastSeenAt: m.lastSeenAt,
        info: m.info,
      };
      tx.insert(peers).values(row).onConflictDoUpdate({ target: peers.id, set: row }).run();
    }
  });
}

export function deletePeer(db: Db, id: string): void {
  db.delete(peers).where(eq(peers.id, id)).run();
}

export function readMeta(db: Db, key: string): string | undefined {
  return db.select().from(nodeMeta).where(eq(nodeMeta.key, key)).get()?.value;
}

export function writeMeta(db: Db, key: string, value: string): void {
  db.insert(nodeMeta).values({ key, value }).onConflictDoUpdate({ target: nodeMeta.key, set: { value } }).run();
}

export function deleteMeta(db: Db, key: string): void {
  db.delete(nodeMeta).where(eq(nodeMeta.key, key)).run();
}
