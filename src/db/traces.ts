import { and, desc, eq, gt, gte } from "drizzle-orm";
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
  /** Prepared once: a busy work queue records thousands of transitions a second, so a flush is thousands of rows. */
  private readonly insert;
  private readonly trim;

  constructor(
    private readonly db: Db,
    private readonly limits: { maxRows: number; maxBuffered: number } = { maxRows: 100_000, maxBuffered: 10_000 },
  ) {
    this.insert = db.$client.prepare(
      "INSERT INTO traces (machine, instance, from_state, to_state, event, cause, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.trim = db.$client.prepare("DELETE FROM traces WHERE seq <= (SELECT MAX(seq) FROM traces) - ?");
  }

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
    this.db.transaction(() => {
      for (const r of rows) this.insert.run(r.machine, r.instance, r.from, r.to, r.event, r.cause, r.at);
      this.trim.run(this.limits.maxRows);
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
