import { and, desc, eq, gt, gte, lte, sql } from "drizzle-orm";
import type { TraceRecord } from "../observability/trace.ts";
import type { Db } from "./client.ts";
import { traces } from "./schema.ts";

export interface TraceQuery {
  machine?: string;
  instance?: string;
  after?: number;
  since?: number;
  limit?: number;
}

export type StoredTrace = TraceRecord & { seq: number };

/**
 * Transition records go to memory first and reach SQLite in one short transaction per flush,
 * so a burst of transitions never holds the event loop; the table is trimmed to `maxRows`.
 */
export class TraceStore {
  private buffer: TraceRecord[] = [];
  dropped = 0;

  constructor(
    private readonly db: Db,
    private readonly limits: { maxRows: number; maxBuffered: number } = { maxRows: 100_000, maxBuffered: 10_000 },
  ) {}

  record(r: TraceRecord): void {
    if (this.buffer.length >= this.limits.maxBuffered) {
      this.buffer.shift();
      this.dropped++;
    }
    this.buffer.push(r);
  }

  flush(): void {
    if (this.buffer.length === 0) return;
    const rows = this.buffer;
    this.buffer = [];
    this.db.transaction((tx) => {
      for (let i = 0; i < rows.length; i += 200)
        tx.insert(traces)
          .values(rows.slice(i, i + 200))
          .run();
      tx.delete(traces)
        .where(lte(traces.seq, sql`(SELECT MAX(seq) FROM traces) - ${this.limits.maxRows}`))
        .run();
    });
  }

  /** Oldest first; with no `after`, the newest `limit` rows. */
  query(q: TraceQuery): StoredTrace[] {
    this.flush();
    const where = and(
      q.machine ? eq(traces.machine, q.machine) : undefined,
      q.instance ? eq(traces.instance, q.instance) : undefined,
      q.after !== undefined ? gt(traces.seq, q.after) : undefined,
      q.since !== undefined ? gte(traces.at, q.since) : undefined,
    );
    const limit = Math.min(q.limit ?? 200, 10_000);
    if (q.after !== undefined) return this.db.select().from(traces).where(where).orderBy(traces.seq).limit(limit).all();
    return this.db.select().from(traces).where(where).orderBy(desc(traces.seq)).limit(limit).all().reverse();
  }
}
