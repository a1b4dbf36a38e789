import { Database } from "bun:sqlite";
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type BunSQLiteDatabase, drizzle } from "drizzle-orm/bun-sqlite";
import { errorText } from "../observability/guarded-write.ts";
import { embeddedMigrations } from "./migrations.gen.ts";
import * as schema from "./schema.ts";

export type Db = BunSQLiteDatabase<typeof schema> & { $client: Database };

/** Opens (creating if needed) the node's state database and applies the migrations carried in the binary. */
export function openDb(dataDir: string): Db {
  return openDataDir(dataDir, () => undefined).db;
}

/** A data dir the node cannot use, in one line that names it and what failed (the CLI exits with code 2). */
export class DataDirError extends Error {
  override name = "DataDirError";
}

/**
 * Opens the node's state database and runs `init`, the writes that must be durable before the node starts.
 * A data dir that cannot be created, opened or written (read-only, no permission, a full disk) gives a
 * DataDirError; a database this call created is removed again, with any folder it created, so nothing
 * half-made is left behind. An `init` that throws a DataDirError keeps its message.
 */
export function openDataDir<T>(dataDir: string, init: (db: Db) => T): { db: Db; value: T } {
  let createdDir: string | undefined;
  try {
    createdDir = mkdirSync(dataDir, { recursive: true });
  } catch (e) {
    throw new DataDirError(`data dir ${dataDir}: cannot create it (${errorText(e)})`);
  }
  const path = join(dataDir, "state.db");
  const fresh = !existsSync(path);
  let db: Db | undefined;
  try {
    db = openDbFile(path);
    return { db, value: init(db) };
  } catch (e) {
    db?.$client.close();
    const problem = e instanceof DataDirError ? e : new DataDirError(dataDirProblem(dataDir, e));
    if (createdDir) removeIfPossible(createdDir);
    else if (fresh) for (const suffix of ["", "-wal", "-shm", "-journal"]) removeIfPossible(path + suffix);
    throw problem;
  }
}

/** A read-only disk refuses even this: then there was nothing to remove. */
function removeIfPossible(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {}
}

function dataDirProblem(dataDir: string, e: unknown): string {
  try {
    accessSync(dataDir, constants.W_OK);
  } catch (denied) {
    return `data dir ${dataDir} is not writable (${errorText(denied)})`;
  }
  const code = (e as { code?: string }).code;
  if (code === "SQLITE_FULL" || code === "ENOSPC") return `data dir ${dataDir}: its disk is full (${errorText(e)})`;
  return `data dir ${dataDir}: cannot use its database ${join(dataDir, "state.db")} (${errorText(e)})`;
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
  // SQLite's default page cache is 2 MiB; the queue's hot pages (its id index, fresh rows, the history) outgrow
  // it within minutes of steady work, and every miss is a read from the file or the WAL. A bound, not an allocation.
  client.exec("PRAGMA cache_size = -65536");
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
