import { and, desc, eq, gt, gte, sql } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import * as v from "valibot";
import { wireNumberSchema } from "../net/bounds.ts";
import { GuardedWrite } from "../observability/guarded-write.ts";
import { createLogger, type Logger } from "../observability/log.ts";
import { type TraceRecord, traceRecordSchema } from "../observability/trace.ts";
import type { Db } from "./client.ts";
import { runHistory, traces, workHistory } from "./schema.ts";

export interface TraceQuery {
  machine?: string;
  instance?: string;
  after?: number;
  since?: number;
  limit?: number;
}

/** A recorded transition of a state machine, as GET /traces answers it. */
export const storedTraceSchema = v.object({ seq: wireNumberSchema, ...traceRecordSchema.entries });

export type StoredTrace = v.InferOutput<typeof storedTraceSchema>;

/** The job machine's transitions are not kept twice: its trace is the replicated work history. */
export const JOB_MACHINE = "job";
/** Likewise a training run's loop: its trace is the replicated run history. */
export const RUN_MACHINE = "run";

export interface TraceStoreOptions {
  maxRows?: number;
  maxBuffered?: number;
  /** Where a failing flush (a full disk) is reported; silent by default. */
  log?: Logger;
}

/**
 * Transition records go to memory first and reach SQLite in one short transaction per flush,
 * so a burst of transitions never holds the event loop; the table is trimmed to `maxRows`.
 * A flush that fails (a full disk) keeps its rows buffered for the next one and never throws.
 */
export class TraceStore {
  private buffer: TraceRecord[] = [];
  dropped = 0;
  /** Prepared once: a busy work queue records thousands of transitions a second, so a flush is thousands of rows. */
  private readonly insert;
  private readonly trim;
  private readonly maxRows: number;
  private readonly maxBuffered: number;
  private readonly guard: GuardedWrite;

  constructor(
    private readonly db: Db,
    opts: TraceStoreOptions = {},
  ) {
    this.maxRows = opts.maxRows ?? 100_000;
    this.maxBuffered = opts.maxBuffered ?? 10_000;
    this.guard = new GuardedWrite(opts.log ?? createLogger("error", {}, () => true), "trace flush");
    this.insert = db.$client.prepare(
      "INSERT INTO traces (machine, instance, from_state, to_state, event, cause, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.trim = db.$client.prepare("DELETE FROM traces WHERE seq <= (SELECT MAX(seq) FROM traces) - ?");
  }

  record(r: TraceRecord): void {
    if (this.buffer.length >= this.maxBuffered) {
      this.buffer.shift();
      this.dropped++;
    }
    this.buffer.push(r);
  }

  /** Writes the buffered rows; they stay buffered when the write fails or waits out its backoff. */
  flush(): void {
    if (this.buffer.length === 0) return;
    const rows = this.buffer;
    const written = this.guard.run(() =>
      this.db.transaction(() => {
        for (const r of rows) this.insert.run(r.machine, r.instance, r.from, r.to, r.event, r.cause, r.at);
        this.trim.run(this.maxRows);
      }),
    );
    if (written) this.buffer = [];
  }

  /**
   * Oldest first; with no `after`, the newest `limit` rows. Job transitions come from the work history
   * (`machine: "job"`, where `seq` is the history's): thousands a second on a busy queue, they would
   * otherwise push every other machine's rows out of the bounded table within seconds.
   */
  query(q: TraceQuery): StoredTrace[] {
    if (q.machine === JOB_MACHINE) return this.jobHistory(q);
    if (q.machine === RUN_MACHINE) return this.runHistory(q);
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

  private jobHistory(q: TraceQuery): StoredTrace[] {
    const h = workHistory;
    return this.history(q, JOB_MACHINE, h, { ...h, instance: h.itemId });
  }

  private runHistory(q: TraceQuery): StoredTrace[] {
    const h = runHistory;
    return this.history(q, RUN_MACHINE, h, { ...h, instance: h.run });
  }

  /** A replicated history table read as a machine's trace. */
  private history(
    q: TraceQuery,
    machine: string,
    table: typeof workHistory | typeof runHistory,
    c: Record<"seq" | "instance" | "from" | "to" | "event" | "cause" | "at", SQLiteColumn>,
  ): StoredTrace[] {
    const where = and(
      q.instance ? eq(c.instance, q.instance) : undefined,
      q.after !== undefined ? gt(c.seq, q.after) : undefined,
      q.since !== undefined ? gte(c.at, q.since) : undefined,
    );
    const limit = Math.min(q.limit ?? 200, 10_000);
    const columns = {
      seq: sql<number>`${c.seq}`,
      machine: sql<string>`${machine}`,
      instance: sql<string>`${c.instance}`,
      from: sql<string | null>`${c.from}`,
      to: sql<string>`${c.to}`,
      event: sql<string>`${c.event}`,
      cause: sql<string | null>`${c.cause}`,
      at: sql<number>`${c.at}`,
    };
    const rows = this.db.select(columns).from(table).where(where);
    if (q.after !== undefined) return rows.orderBy(c.seq).limit(limit).all();
    return rows.orderBy(desc(c.seq)).limit(limit).all().reverse();
  }
}
