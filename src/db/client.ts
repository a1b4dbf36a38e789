import { Database } from "bun:sqlite";
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type BunSQLiteDatabase, drizzle } from "drizzle-orm/bun-sqlite";
import { embeddedMigrations } from "./migrations.gen.ts";
import * as schema from "./schema.ts";

export type Db = BunSQLiteDatabase<typeof schema> & { $client: Database };

/** Opens (creating if needed) the node's state database and applies the migrations carried in the binary. */
export function openDb(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true });
  return openDbFile(join(dataDir, "state.db"));
}

/** A throwaway database with the same schema: one per simulated node. */
export function openMemoryDb(): Db {
  return openDbFile(":memory:");
}

function openDbFile(path: string): Db {
  const client = new Database(path, { create: true, strict: true });
  client.exec("PRAGMA journal_mode = WAL");
  client.exec("PRAGMA busy_timeout = 1000");
  // FULL: a Raft vote or log entry must survive power loss, not only a crash of this process.
  client.exec("PRAGMA synchronous = FULL");
  client.exec("PRAGMA foreign_keys = ON");
  const db = drizzle({ client, schema }) as Db;
  migrateEmbedded(db);
  return db;
}

/** Drizzle's own bun-sqlite migrator, fed from the embedded SQL instead of a folder on disk. */
export function migrateEmbedded(db: Db): number {
  const { journal, migrations } = embeddedMigrations;
  const metas = journal.entries.map((e) => {
    const query = migrations[`m${String(e.idx).padStart(4, "0")}`];
    if (query === undefined) throw new Error(`missing embedded migration ${e.tag}`);
    return {
      sql: query.split("--> statement-breakpoint"),
      bps: e.breakpoints,
      folderMillis: e.when,
      hash: createHash("sha256").update(query).digest("hex"),
    };
  });
  // dialect and session are internal in the typings; drizzle's own migrators call exactly this.
  const internal = db as unknown as {
    dialect: { migrate(m: unknown[], s: unknown, c: object): void };
    session: unknown;
  };
  internal.dialect.migrate(metas, internal.session, { migrationsFolder: "(embedded)" });
  return metas.length;
}
