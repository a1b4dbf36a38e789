import { getTableName } from "drizzle-orm";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";
import * as v from "valibot";
import type { Db } from "../db/client.ts";
import { readMeta, writeMeta } from "../db/peers.ts";
import type { Entry } from "./messages.ts";
import { CONFIG_COMMAND } from "./raft.ts";

/** What an apply function may read: where the entry sits in the log. Never a clock or randomness. */
export interface ApplyContext {
  index: number;
  term: number;
}

export interface CommandDefinition<P> {
  name: string;
  payload: v.GenericSchema<unknown, P>;
  /** The tables this command writes: they make up the replicated state a snapshot carries. */
  tables: readonly SQLiteTable[];
  /**
   * Deterministic: the same entries applied in the same order give the same state on every voter.
   * Called inside the batch's transaction; `db` is the node's one connection, so its writes join it.
   */
  apply(db: Db, payload: P, ctx: ApplyContext): unknown;
}

export function defineCommand<P>(def: CommandDefinition<P>): CommandDefinition<P> {
  return def;
}

const APPLIED_KEY = "raft.applied_index";

/**
 * The replicated state: committed entries applied to SQLite in order, in the runtime's transaction
 * together with the applied index, so a restart resumes exactly after the last applied entry.
 */
export class StateMachine {
  private readonly commands = new Map<string, CommandDefinition<unknown>>();
  private readonly tables = new Map<string, SQLiteTable>();
  /** Written with every applied batch: prepared once rather than built by the query builder each time. */
  private readonly writeApplied;

  constructor(
    private readonly db: Db,
    definitions: readonly CommandDefinition<unknown>[],
    private readonly onSkipped: (entry: Entry, reason: string) => void,
  ) {
    this.writeApplied = db.$client.prepare(
      "INSERT INTO node_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    for (const d of definitions) {
      if (this.commands.has(d.name)) throw new Error(`command ${d.name} registered twice`);
      this.commands.set(d.name, d);
      for (const t of d.tables) this.tables.set(getTableName(t), t);
    }
  }

  /** Every replicated table's rows at the applied index, as JSON: what a lagging voter installs. */
  snapshot(): string {
    const tables: Record<string, unknown[]> = {};
    for (const [name, table] of this.tables) tables[name] = this.db.select().from(table).all();
    return JSON.stringify({ appliedIndex: this.appliedIndex(), tables });
  }

  /** Replaces the replicated tables with a snapshot's rows, through the caller's transaction. */
  restoreIn(tx: Db, data: string, index: number): void {
    const parsed = JSON.parse(data) as { tables: Record<string, Record<string, unknown>[]> };
    for (const [name, table] of this.tables) {
      tx.delete(table).run();
      const rows = parsed.tables[name] ?? [];
      for (let i = 0; i < rows.length; i += 200)
        tx.insert(table)
          .values(rows.slice(i, i + 200) as never)
          .run();
    }
    writeMeta(tx, APPLIED_KEY, String(index));
  }

  appliedIndex(): number {
    return Number(readMeta(this.db, APPLIED_KEY) ?? 0);
  }

  /** Checks a command before it is proposed, so a bad one is refused at the door rather than skipped everywhere. */
  validate(command: Entry["command"]): string | null {
    const def = this.commands.get(command.name);
    if (!def) return `unknown command "${command.name}"`;
    const parsed = v.safeParse(def.payload, command.payload);
    return parsed.success ? null : (parsed.issues[0]?.message ?? "invalid payload");
  }

  /**
   * Applies entries inside the caller's transaction `_tx`, recording the applied index with them: every
   * statement runs on the node's one connection, which that transaction holds open.
   * `onResult` receives what each command returned (a proposer may be waiting for it).
   */
  applyIn(_tx: Db, entries: readonly Entry[], onResult?: (index: number, result: unknown) => void): void {
    if (entries.length === 0) return;
    for (const entry of entries) {
      // Raft's own entries (a new leader's no-op, voter changes) change nothing here.
      if (entry.command.name === "noop" || entry.command.name === CONFIG_COMMAND) continue;
      const def = this.commands.get(entry.command.name);
      const parsed = def ? v.safeParse(def.payload, entry.command.payload) : undefined;
      if (!def || !parsed?.success) {
        this.onSkipped(entry, def ? "payload does not match its schema" : "unknown command");
        continue;
      }
      const result = def.apply(this.db, parsed.output, { index: entry.index, term: entry.term });
      onResult?.(entry.index, result);
    }
    this.writeApplied.run(APPLIED_KEY, String((entries.at(-1) as Entry).index));
  }
}
