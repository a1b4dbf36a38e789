import * as v from "valibot";
import type { Db } from "../db/client.ts";
import { readMeta, writeMeta } from "../db/peers.ts";
import type { Entry } from "./messages.ts";

/** What an apply function may read: where the entry sits in the log. Never a clock or randomness. */
export interface ApplyContext {
  index: number;
  term: number;
}

export interface CommandDefinition<P> {
  name: string;
  payload: v.GenericSchema<unknown, P>;
  /** Deterministic: the same entries applied in the same order give the same state on every voter. */
  apply(tx: Db, payload: P, ctx: ApplyContext): void;
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

  constructor(
    private readonly db: Db,
    definitions: readonly CommandDefinition<unknown>[],
    private readonly onSkipped: (entry: Entry, reason: string) => void,
  ) {
    for (const d of definitions) {
      if (this.commands.has(d.name)) throw new Error(`command ${d.name} registered twice`);
      this.commands.set(d.name, d);
    }
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

  /** Applies entries through `tx`, the caller's transaction, recording the applied index with them. */
  applyIn(tx: Db, entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    for (const entry of entries) {
      if (entry.command.name === "noop") continue;
      const def = this.commands.get(entry.command.name);
      const parsed = def ? v.safeParse(def.payload, entry.command.payload) : undefined;
      if (!def || !parsed?.success) {
        this.onSkipped(entry, def ? "payload does not match its schema" : "unknown command");
        continue;
      }
      def.apply(tx, parsed.output, { index: entry.index, term: entry.term });
    }
    writeMeta(tx, APPLIED_KEY, String((entries.at(-1) as Entry).index));
  }
}
