import { Database } from "bun:sqlite";
import { drizzle } from "drizzle-orm/bun-sqlite";
import type { Commit } from "../../src/consensus/runtime.ts";
import { type Db, openMemoryDb } from "../../src/db/client.ts";
import * as schema from "../../src/db/schema.ts";

let template: Uint8Array | null = null;

/** A migrated in-memory database, copied from one migrated once (migrating each of thousands costs seconds). */
function imageDb(image?: Uint8Array): Db {
  template ??= openMemoryDb().$client.serialize();
  const client = Database.deserialize(image ?? template, { strict: true });
  client.exec("PRAGMA foreign_keys = ON");
  return drizzle({ client, schema }) as Db;
}

/**
 * One simulated node's disk: a real SQLite database (in memory) under the runtime's real storage, with the
 * faults a disk has. A write may fail (the transaction rolls back whole, as on a full disk); a crash may land
 * inside a write (`tearNextWrite`: SQLite's journal undoes the torn transaction, and the node is down); and
 * the fsync may lie (`lie()`: writes succeed but only what was on the disk then survives the next crash).
 */
export class SimDisk {
  db: Db = imageDb();
  failRate = 0;
  /** Set by the simulator: the next write is cut short by a crash (then `onTorn` takes the node down). */
  tearNextWrite = false;
  /** Torn: nothing more is written until the crash is carried out. */
  private down = false;
  /** While the fsync lies: the image a crash goes back to. */
  private durable: Uint8Array | null = null;

  constructor(
    private readonly random: () => number,
    private readonly onTorn: () => void,
  ) {}

  readonly commit: Commit = (write) => {
    if (this.down) throw new Error("simulated crash: the node is going down");
    this.db.transaction((tx) => {
      write(tx as unknown as Db);
      if (this.tearNextWrite) {
        this.tearNextWrite = false;
        this.down = true;
        this.onTorn();
        throw new Error("simulated crash in the middle of a write");
      }
      if (this.failRate > 0 && this.random() < this.failRate) throw new Error("simulated disk I/O error");
    });
  };

  /** From now until the next crash, writes report success but are not made durable. */
  lie(): void {
    this.durable ??= this.db.$client.serialize();
  }

  get lying(): boolean {
    return this.durable !== null;
  }

  /** What survives a crash: everything committed, unless the fsync lied since. */
  crash(): void {
    this.down = false;
    this.tearNextWrite = false;
    if (!this.durable) return;
    this.db.$client.close();
    this.db = imageDb(this.durable);
    this.durable = null;
  }
}
