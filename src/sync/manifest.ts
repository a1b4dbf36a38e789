import type { Stats } from "node:fs";
import { lstat, realpath, stat } from "node:fs/promises";
import { join, sep } from "node:path";
import type { DataCategory } from "../config/load.ts";
import type { Db } from "../db/client.ts";
import type { Hasher } from "./hasher.ts";
import type { FileEntry, Manifest, ManifestDigest } from "./model.ts";

export interface ScanResult {
  hashed: number;
  removed: number;
  unchanged: number;
  /** New or changed files left for a later scan: still settling, changed while hashed, or unreadable. */
  skipped: number;
}

export interface ManifestIndexOptions {
  db: Db;
  nodeId: string;
  categories: readonly DataCategory[];
  hasher: Hasher;
  now?: () => number;
  /** A file modified more recently than this is left alone this round: its producer may still be writing. */
  settleMs?: number;
}

/** A file this node holds, found by content. */
export interface HeldFile {
  category: string;
  path: string;
  absPath: string;
  size: number;
  pieces: string[];
}

/** Where sync writes a file before committing it; never part of a manifest. */
const IN_PROGRESS = [".partial", ".partial.json", ".partial.pieces.json"];
/** fileEntrySchema's bound: a longer path would make a peer reject the whole manifest. */
const MAX_PATH_CHARS = 1024;
/** A scan writes its rows in transactions of at most BATCH_ROWS, and once the oldest has waited BATCH_MS. */
const BATCH_ROWS = 256;
const BATCH_MS = 1_000;

interface Row {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

interface ShaRow {
  category: string;
  path: string;
  size: number;
  /** JSON array of hex strings. */
  pieces: string;
}

/** Scans of one category run one at a time; callers arriving while one runs share the next. */
interface Lane {
  tail: Promise<unknown>;
  queued: Promise<ScanResult> | null;
}

/**
 * This node's index of its data roots: path, size, mtime and SHA-256 per file, kept in `data_files` so only
 * new or changed files are hashed again (in the Hasher's worker), with a digest per category for gossip.
 */
export class ManifestIndex {
  private readonly db: Db;
  private readonly nodeId: string;
  private readonly categories: ReadonlyMap<string, DataCategory>;
  private readonly hasher: Hasher;
  private readonly now: () => number;
  /** A file modified more recently than this is left for a later scan (it may still be being written). */
  readonly settleMs: number;
  private readonly statements: ReturnType<typeof prepare>;
  private readonly lanes = new Map<string, Lane>();
  private readonly digestCache = new Map<string, ManifestDigest>();

  constructor(opts: ManifestIndexOptions) {
    this.db = opts.db;
    this.nodeId = opts.nodeId;
    this.categories = new Map(opts.categories.map((c) => [c.name, c]));
    this.hasher = opts.hasher;
    this.now = opts.now ?? Date.now;
    this.settleMs = opts.settleMs ?? 1_000;
    this.statements = prepare(opts.db);
  }

  /** Brings the index of one category (or of all, one after another) up to date with the disk. */
  async scan(category?: string): Promise<ScanResult> {
    if (category !== undefined) return this.scanQueued(this.category(category));
    const total: ScanResult = { hashed: 0, removed: 0, unchanged: 0, skipped: 0 };
    for (const cat of this.categories.values()) {
      const r = await this.scanQueued(cat);
      total.hashed += r.hashed;
      total.removed += r.removed;
      total.unchanged += r.unchanged;
      total.skipped += r.skipped;
    }
    return total;
  }

  /** The category's files as indexed (the sync service adds the retention rules it applies). */
  manifest(category: string): Omit<Manifest, "retired"> {
    const files = this.rows(this.category(category).name);
    return { node: this.nodeId, category, digest: this.digest(category).digest, files };
  }

  /** Recomputed only after the category's rows changed. */
  digest(category: string): ManifestDigest {
    const name = this.category(category).name;
    let digest = this.digestCache.get(name);
    if (!digest) {
      digest = digestOf(this.rows(name));
      this.digestCache.set(name, digest);
    }
    return digest;
  }

  digests(): Record<string, ManifestDigest> {
    const out: Record<string, ManifestDigest> = {};
    for (const name of this.categories.keys()) out[name] = this.digest(name);
    return out;
  }

  /** A file with this content in any configured category, as last indexed (the disk may have moved on since). */
  findBySha(sha256: string): HeldFile | null {
    for (const row of this.statements.bySha.all(sha256) as ShaRow[]) {
      const cat = this.categories.get(row.category);
      if (!cat) continue;
      const pieces = JSON.parse(row.pieces) as string[];
      return { category: row.category, path: row.path, absPath: absPathOf(cat, row.path), size: row.size, pieces };
    }
    return null;
  }

  /** Indexes a file that sync has just committed, so the next scan finds it unchanged instead of hashing it. */
  record(category: string, entry: FileEntry, pieces: readonly string[]): void {
    const name = this.category(category).name;
    this.statements.upsert.run(
      name,
      entry.path,
      entry.size,
      Math.trunc(entry.mtimeMs),
      entry.sha256,
      JSON.stringify(pieces),
    );
    this.digestCache.delete(name);
  }

  private category(name: string): DataCategory {
    const cat = this.categories.get(name);
    if (!cat) throw new Error(`unknown data category "${name}"`);
    return cat;
  }

  private rows(category: string): Row[] {
    return this.statements.rowsOf.all(category) as Row[];
  }

  private scanQueued(cat: DataCategory): Promise<ScanResult> {
    let lane = this.lanes.get(cat.name);
    if (!lane) {
      lane = { tail: Promise.resolve(), queued: null };
      this.lanes.set(cat.name, lane);
    }
    // A scan that has not started yet will see whatever this caller wants seen: share it.
    if (lane.queued) return lane.queued;
    const current = lane;
    const queued = current.tail.then(() => {
      current.queued = null;
      return this.scanNow(cat);
    });
    current.queued = queued;
    current.tail = queued.catch(() => undefined);
    return queued;
  }

  private async scanNow(cat: DataCategory): Promise<ScanResult> {
    const result: ScanResult = { hashed: 0, removed: 0, unchanged: 0, skipped: 0 };
    const known = new Map(this.rows(cat.name).map((r) => [r.path, r]));
    const present = new Set<string>();
    const writes = new RowWriter(this.db, this.statements, () => this.digestCache.delete(cat.name));
    const rootReal = await realpath(cat.root).catch(() => null);
    if (rootReal !== null) {
      const hashing = new Set<Promise<void>>();
      for await (const rel of walk(cat)) {
        const path = sep === "/" ? rel : rel.split(sep).join("/");
        if (present.has(path) || !indexable(path)) continue;
        const abs = join(cat.root, rel);
        const st = await statInside(abs, rootReal);
        if (!st) continue;
        present.add(path);
        const row = known.get(path);
        if (row && row.size === st.size && row.mtimeMs === Math.trunc(st.mtimeMs)) {
          result.unchanged++;
          continue;
        }
        if (this.now() - st.mtimeMs < this.settleMs) {
          result.skipped++;
          continue;
        }
        while (hashing.size >= this.hasher.workers) await Promise.race(hashing);
        const job: Promise<void> = this.hashOne(cat.name, path, abs, st, writes)
          .then((hashed) => {
            if (hashed) result.hashed++;
            else result.skipped++;
          })
          .finally(() => hashing.delete(job));
        hashing.add(job);
      }
      await Promise.all(hashing);
    }
    for (const row of known.values()) {
      if (present.has(row.path)) continue;
      writes.remove(cat.name, row);
      result.removed++;
    }
    writes.flush();
    return result;
  }

  /** Hashes one file and queues its row; false when it could not be read or changed while it was read. */
  private async hashOne(
    category: string,
    path: string,
    abs: string,
    before: Stats,
    writes: RowWriter,
  ): Promise<boolean> {
    const hash = await this.hasher.hashFile(abs).catch(() => null);
    if (!hash) return false;
    const after = await stat(abs).catch(() => null);
    if (!after || after.size !== before.size || after.mtimeMs !== before.mtimeMs || hash.size !== before.size)
      return false;
    writes.upsert({
      category,
      path,
      size: hash.size,
      mtimeMs: Math.trunc(before.mtimeMs),
      sha256: hash.sha256,
      pieces: hash.pieces,
    });
    return true;
  }
}

/** The first 32 hex digits of a SHA-256 over `path\0sha256\n` per file in path order, with the count and bytes. */
function digestOf(rows: readonly Row[]): ManifestDigest {
  const hasher = new Bun.CryptoHasher("sha256");
  let bytes = 0;
  for (const row of rows) {
    hasher.update(`${row.path}\0${row.sha256}\n`);
    bytes += row.size;
  }
  return { digest: hasher.digest("hex").slice(0, 32), files: rows.length, bytes };
}

function absPathOf(cat: DataCategory, path: string): string {
  return join(cat.root, ...path.split("/"));
}

function indexable(path: string): boolean {
  return path.length <= MAX_PATH_CHARS && !IN_PROGRESS.some((suffix) => path.endsWith(suffix));
}

/**
 * Every path under the root matching one of the category's globs (a path may come once per glob). Symlinks are
 * listed, not followed, so the walk cannot loop or wander out of the root; statInside decides on each.
 */
async function* walk(cat: DataCategory): AsyncGenerator<string> {
  for (const glob of cat.globs) {
    yield* new Bun.Glob(glob).scan({ cwd: cat.root, onlyFiles: false, followSymlinks: false });
  }
}

/** The file's stats, or null if it is gone, not a file, or a symlink whose target lies outside the root. */
async function statInside(abs: string, rootReal: string): Promise<Stats | null> {
  const link = await lstat(abs).catch(() => null);
  if (!link) return null;
  if (link.isSymbolicLink()) {
    const target = await realpath(abs).catch(() => null);
    if (target === null || !target.startsWith(rootReal + sep)) return null;
    const st = await stat(abs).catch(() => null);
    return st?.isFile() ? st : null;
  }
  return link.isFile() ? link : null;
}

interface NewRow extends Row {
  category: string;
  pieces: string[];
}

/** A scan's writes, in short transactions: a long scan keeps what it has hashed even if the process stops. */
class RowWriter {
  private pending: (() => void)[] = [];
  private firstAt = 0;

  constructor(
    private readonly db: Db,
    private readonly statements: ReturnType<typeof prepare>,
    private readonly onChange: () => void,
  ) {}

  upsert(row: NewRow): void {
    const { upsert } = this.statements;
    this.add(() => upsert.run(row.category, row.path, row.size, row.mtimeMs, row.sha256, JSON.stringify(row.pieces)));
  }

  /** Deletes the row only if it still holds what the scan saw: a file sync recorded meanwhile stays. */
  remove(category: string, row: Row): void {
    const { remove } = this.statements;
    this.add(() => remove.run(category, row.path, row.sha256));
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.db.$client.transaction(() => {
      for (const write of batch) write();
    })();
    this.onChange();
  }

  private add(write: () => void): void {
    if (this.pending.length === 0) this.firstAt = performance.now();
    this.pending.push(write);
    if (this.pending.length >= BATCH_ROWS || performance.now() - this.firstAt >= BATCH_MS) this.flush();
  }
}

function prepare(db: Db) {
  const client = db.$client;
  return {
    rowsOf: client.prepare(
      "SELECT path, size, mtime_ms AS mtimeMs, sha256 FROM data_files WHERE category = ?1 ORDER BY path",
    ),
    bySha: client.prepare("SELECT category, path, size, pieces FROM data_files WHERE sha256 = ?1"),
    upsert: client.prepare(`
      INSERT INTO data_files (category, path, size, mtime_ms, sha256, pieces) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
      ON CONFLICT (category, path) DO UPDATE SET
        size = excluded.size, mtime_ms = excluded.mtime_ms, sha256 = excluded.sha256, pieces = excluded.pieces`),
    remove: client.prepare("DELETE FROM data_files WHERE category = ?1 AND path = ?2 AND sha256 = ?3"),
  };
}
