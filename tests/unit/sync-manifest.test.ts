import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { DataCategory } from "../../src/config/load.ts";
import { type Db, openDb } from "../../src/db/client.ts";
import { Hasher } from "../../src/sync/hasher.ts";
import { ManifestIndex, type ManifestIndexOptions } from "../../src/sync/manifest.ts";
import { type FileEntry, PIECE_BYTES } from "../../src/sync/model.ts";
import { wantedFrom } from "../../src/sync/plan.ts";

const sha = (data: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(data).digest("hex");

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 65_536) crypto.getRandomValues(out.subarray(at, Math.min(n, at + 65_536)));
  return out;
}

/** The piece hashes as the spec defines them, computed here on the main thread from the bytes. */
function piecesOf(data: Uint8Array): string[] {
  const pieces: string[] = [];
  for (let at = 0; at < data.length; at += PIECE_BYTES) pieces.push(sha(data.subarray(at, at + PIECE_BYTES)));
  return pieces.length > 0 ? pieces : [sha("")];
}

/** Runs `work` while a 10 ms timer samples the event loop; answers the longest gap between its ticks. */
async function loopGapDuring<T>(work: () => Promise<T>): Promise<{ result: T; maxGapMs: number }> {
  let last = performance.now();
  let maxGapMs = 0;
  const sampler = setInterval(() => {
    const t = performance.now();
    maxGapMs = Math.max(maxGapMs, t - last);
    last = t;
  }, 10);
  try {
    const result = await work();
    maxGapMs = Math.max(maxGapMs, performance.now() - last);
    return { result, maxGapMs };
  } finally {
    clearInterval(sampler);
  }
}

let hasher: Hasher;
beforeAll(() => {
  hasher = new Hasher();
});
afterAll(() => hasher.close());

describe("Hasher", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "p2p-hasher-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("whole-file and per-piece SHA-256 match, for pieces plus a remainder and for an empty file", async () => {
    const data = randomBytes(2 * PIECE_BYTES + 12_345);
    writeFileSync(join(dir, "data.bin"), data);
    writeFileSync(join(dir, "empty.bin"), "");

    const hash = await hasher.hashFile(join(dir, "data.bin"));
    expect(hash).toEqual({ sha256: sha(data), pieces: piecesOf(data), size: data.length });
    expect(hash.pieces).toHaveLength(3);

    expect(await hasher.hashFile(join(dir, "empty.bin"))).toEqual({ sha256: sha(""), pieces: [sha("")], size: 0 });
  });

  test("a file that cannot be read is rejected with its path", async () => {
    const missing = join(dir, "missing.bin");
    await expect(hasher.hashFile(missing)).rejects.toThrow(missing);
  });

  test("past the bound the queue refuses, and close rejects what waits", async () => {
    writeFileSync(join(dir, "a.bin"), randomBytes(1024));
    const small = new Hasher({ maxQueued: 1 });
    const running = small.hashFile(join(dir, "a.bin"));
    const waiting = small.hashFile(join(dir, "a.bin"));
    await expect(small.hashFile(join(dir, "a.bin"))).rejects.toThrow("hash queue full");
    const settled = Promise.allSettled([running, waiting]);
    small.close();
    for (const outcome of await settled) {
      expect(outcome.status).toBe("rejected");
      expect(String((outcome as PromiseRejectedResult).reason)).toContain("hasher is closed");
    }
    await expect(small.hashFile(join(dir, "a.bin"))).rejects.toThrow("hasher is closed");
  });

  test("a received piece is written only if it matches its SHA-256; its buffer comes back; a piece on disk is checked", async () => {
    const path = join(dir, "partial");
    writeFileSync(path, new Uint8Array(3 * 1024));
    const piece = randomBytes(1024);
    const buffer = new ArrayBuffer(2048);
    const good = new Uint8Array(buffer, 0, 1024);
    good.set(piece);
    const written = await hasher.writePiece(path, 1024, good, sha(piece));
    expect(written.actual).toBeNull();
    // The buffer went to the worker and came back whole, for the next piece.
    expect(buffer.byteLength).toBe(0);
    expect(written.buffer.byteLength).toBe(2048);
    const bad = new Uint8Array(written.buffer, 0, 1024);
    bad[0] = (bad[0] ?? 0) ^ 1;
    const badSha = sha(bad);
    expect((await hasher.writePiece(path, 2048, bad, sha(piece))).actual).toBe(badSha);
    const onDisk = readFileSync(path);
    expect(onDisk.subarray(1024, 2048).equals(piece)).toBe(true);
    expect(onDisk.subarray(2048).every((b) => b === 0)).toBe(true);
    expect(await hasher.checkPiece(path, 1024, 1024, sha(piece))).toBe(true);
    expect(await hasher.checkPiece(path, 2048, 1024, sha(piece))).toBe(false);
    expect(await hasher.checkPiece(path, 2560, 1024, sha(piece))).toBe(false);
    // A view into the middle of a buffer is copied, not taken: that buffer stays usable.
    const big = new Uint8Array(4096);
    big.set(piece, 100);
    expect((await hasher.writePiece(path, 0, big.subarray(100, 1124), sha(piece))).actual).toBeNull();
    expect(big.byteLength).toBe(4096);
    const absent = join(dir, "absent");
    const refused = await hasher.writePiece(absent, 0, new Uint8Array(piece), sha(piece)).catch((e) => e);
    expect(String(refused)).toContain(`writing to ${absent}`);
  });

  test("a piece of whole 4 KiB blocks plus a tail lands intact (the blocks bypass the page cache, the tail does not)", async () => {
    const path = join(dir, "partial");
    writeFileSync(path, new Uint8Array(3 * 8192));
    const piece = randomBytes(2 * 8192 + 100);
    const written = await hasher.writePiece(path, 4096, new Uint8Array(piece), sha(piece));
    expect(written.actual).toBeNull();
    const onDisk = readFileSync(path);
    expect(onDisk.subarray(4096, 4096 + piece.length).equals(piece)).toBe(true);
    expect(onDisk.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    expect(await hasher.checkPiece(path, 4096, piece.length, sha(piece))).toBe(true);
  });

  test("several workers hash in parallel and each answer reaches its caller", async () => {
    const files = Array.from({ length: 8 }, (_, i) => {
      const data = randomBytes(1000 + i);
      writeFileSync(join(dir, `f${i}`), data);
      return { path: join(dir, `f${i}`), sha256: sha(data) };
    });
    const pool = new Hasher({ workers: 3 });
    try {
      const hashes = await Promise.all(files.map((f) => pool.hashFile(f.path)));
      expect(hashes.map((h) => h.sha256)).toEqual(files.map((f) => f.sha256));
    } finally {
      pool.close();
    }
  });

  test("an idle Hasher does not keep the process alive", async () => {
    writeFileSync(join(dir, "a.bin"), "x");
    const script = join(dir, "idle.ts");
    const hasherPath = join(import.meta.dir, "../../src/sync/hasher.ts");
    writeFileSync(
      script,
      `import { Hasher } from ${JSON.stringify(hasherPath)};
       const h = new Hasher();
       console.log((await h.hashFile(${JSON.stringify(join(dir, "a.bin"))})).sha256);`,
    );
    const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "inherit" });
    const deadline = setTimeout(() => proc.kill(), 15_000);
    const code = await proc.exited;
    clearTimeout(deadline);
    expect(code).toBe(0);
    expect((await new Response(proc.stdout).text()).trim()).toBe(sha("x"));
  }, 20_000);

  test("hashing a 200 MiB file keeps the event loop responsive", async () => {
    const path = join(dir, "big.bin");
    const block = randomBytes(1024 * 1024);
    const fd = openSync(path, "w");
    for (let i = 0; i < 200; i++) writeSync(fd, block);
    closeSync(fd);

    const { result, maxGapMs } = await loopGapDuring(() => hasher.hashFile(path));
    expect(result.size).toBe(200 * 1024 * 1024);
    expect(result.pieces).toHaveLength(50);
    expect(maxGapMs).toBeLessThan(500);
  }, 60_000);
});

describe("ManifestIndex", () => {
  let dir: string;
  let db: Db;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "p2p-manifest-"));
    db = openDb(join(dir, "state"));
  });
  afterEach(() => {
    db.$client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const category = (name: string, globs: string[] = ["**/*"], root = join(dir, name)): DataCategory => ({
    name,
    root,
    globs,
    to: "all",
    swarm: false,
    staggerMs: 0,
  });

  /** Files written now are unsettled for settleMs; tests that do not test settling let them count at once. */
  const open = (categories: DataCategory[], over: Partial<ManifestIndexOptions> = {}) =>
    new ManifestIndex({ db, nodeId: "n1", categories, hasher, settleMs: 0, ...over });

  function write(root: string, path: string, data: Uint8Array | string, mtime = new Date(Date.now() - 60_000)) {
    const abs = join(root, path);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, data);
    utimesSync(abs, mtime, mtime);
  }

  const rowCount = () => (db.$client.prepare("SELECT count(*) AS n FROM data_files").get() as { n: number }).n;

  test("indexes path, size, mtime and hashes; a second scan hashes nothing", async () => {
    const games = category("games");
    const data = randomBytes(PIECE_BYTES + 7);
    write(games.root, "a/one.bin", data);
    write(games.root, "empty.bin", "");
    const index = open([games]);

    expect(await index.scan("games")).toEqual({ hashed: 2, removed: 0, unchanged: 0, skipped: 0 });
    const m = index.manifest("games");
    expect(m.node).toBe("n1");
    expect(m.category).toBe("games");
    expect(m.files).toEqual([
      {
        path: "a/one.bin",
        size: data.length,
        mtimeMs: Math.trunc(statSync(join(games.root, "a/one.bin")).mtimeMs),
        sha256: sha(data),
      },
      {
        path: "empty.bin",
        size: 0,
        mtimeMs: Math.trunc(statSync(join(games.root, "empty.bin")).mtimeMs),
        sha256: sha(""),
      },
    ]);
    expect(index.findBySha(sha(data))).toEqual({
      category: "games",
      path: "a/one.bin",
      absPath: join(games.root, "a", "one.bin"),
      size: data.length,
      pieces: piecesOf(data),
    });
    expect(index.findBySha(sha("nothing"))).toBeNull();

    expect(await index.scan("games")).toEqual({ hashed: 0, removed: 0, unchanged: 2, skipped: 0 });
  });

  test("the digest is the spec's: 32 hex of SHA-256 over sorted `path\\0sha256\\n`, with count and bytes", async () => {
    const games = category("games");
    write(games.root, "b.bin", "bee");
    write(games.root, "a.bin", "ay");
    const index = open([games]);
    await index.scan();
    const expected = sha(`a.bin\0${sha("ay")}\nb.bin\0${sha("bee")}\n`).slice(0, 32);
    expect(index.digest("games")).toEqual({ digest: expected, files: 2, bytes: 5 });
    expect(index.manifest("games").digest).toBe(expected);
    expect(index.digests()).toEqual({ games: { digest: expected, files: 2, bytes: 5 } });
  });

  test("a touched or changed file is hashed again, and only it", async () => {
    const games = category("games");
    for (const name of ["a", "b", "c"]) write(games.root, `${name}.bin`, `content ${name}`);
    const index = open([games]);
    await index.scan("games");
    const before = index.digest("games");

    const later = new Date(Date.now() - 30_000);
    utimesSync(join(games.root, "b.bin"), later, later);
    expect(await index.scan("games")).toEqual({ hashed: 1, removed: 0, unchanged: 2, skipped: 0 });
    expect(index.digest("games")).toEqual(before);

    write(games.root, "c.bin", "new content c");
    expect(await index.scan("games")).toEqual({ hashed: 1, removed: 0, unchanged: 2, skipped: 0 });
    expect(index.findBySha(sha("new content c"))?.path).toBe("c.bin");
    expect(index.findBySha(sha("content c"))).toBeNull();
    expect(index.digest("games")).not.toEqual(before);
  });

  test("a deleted file loses its row and changes the digest", async () => {
    const games = category("games");
    write(games.root, "a.bin", "a");
    write(games.root, "b.bin", "b");
    const index = open([games]);
    await index.scan("games");
    const before = index.digest("games");

    unlinkSync(join(games.root, "b.bin"));
    expect(await index.scan("games")).toEqual({ hashed: 0, removed: 1, unchanged: 1, skipped: 0 });
    expect(index.manifest("games").files.map((f) => f.path)).toEqual(["a.bin"]);
    expect(index.findBySha(sha("b"))).toBeNull();
    expect(index.digest("games")).not.toEqual(before);
    expect(index.digest("games")).toMatchObject({ files: 1, bytes: 1 });
  });

  test("the digest does not depend on the order files were written or scanned", async () => {
    const names = ["z/last.bin", "a.bin", "m/mid.bin", "b.bin"];
    const left = category("games", ["**/*"], join(dir, "left"));
    const right = category("games", ["**/*"], join(dir, "right"));
    for (const [i, n] of names.entries()) write(left.root, n, n, new Date(Date.now() - 60_000 - i * 1000));
    for (const [i, n] of [...names].reverse().entries())
      write(right.root, n, n, new Date(Date.now() - 90_000 - i * 1000));
    const leftIndex = open([left]);
    await leftIndex.scan();
    const other = openDb(join(dir, "other"));
    try {
      const rightIndex = new ManifestIndex({ db: other, nodeId: "n2", categories: [right], hasher, settleMs: 0 });
      await rightIndex.scan();
      expect(rightIndex.digest("games")).toEqual(leftIndex.digest("games"));
    } finally {
      other.$client.close();
    }
  });

  test("only files matching the category's globs are indexed, once each", async () => {
    const models = category("models", ["**/*.onnx", "best/*", "**/*.onnx"]);
    write(models.root, "v1/net.onnx", "net1");
    write(models.root, "best/net.onnx", "best");
    write(models.root, "best/notes.txt", "notes");
    write(models.root, "v1/notes.txt", "skip");
    const index = open([models]);
    expect(await index.scan("models")).toMatchObject({ hashed: 3 });
    expect(index.manifest("models").files.map((f) => f.path)).toEqual([
      "best/net.onnx",
      "best/notes.txt",
      "v1/net.onnx",
    ]);
  });

  test("in-progress downloads (.partial, .partial.json) are ignored", async () => {
    const games = category("games");
    write(games.root, "a.bin", "a");
    write(games.root, "b.bin.partial", "half");
    write(games.root, "b.bin.partial.json", "{}");
    const index = open([games]);
    await index.scan("games");
    expect(index.manifest("games").files.map((f) => f.path)).toEqual(["a.bin"]);
  });

  test("a symlink out of the root is ignored; one inside it is indexed", async () => {
    const games = category("games");
    write(games.root, "real.bin", "inside");
    write(join(dir, "outside"), "secret.bin", "outside");
    symlinkSync(join(dir, "outside", "secret.bin"), join(games.root, "leak.bin"));
    symlinkSync(join(dir, "outside"), join(games.root, "leakdir"));
    symlinkSync("real.bin", join(games.root, "alias.bin"));
    const index = open([games]);
    await index.scan("games");
    expect(index.manifest("games").files.map((f) => f.path)).toEqual(["alias.bin", "real.bin"]);
    expect(index.findBySha(sha("outside"))).toBeNull();
  });

  test("a file modified within the settle window waits for a later scan", async () => {
    const games = category("games");
    const mtime = new Date(Date.now() - 60_000);
    write(games.root, "a.bin", "still being written", mtime);
    let now = mtime.getTime() + 500;
    const index = open([games], { settleMs: 1_000, now: () => now });
    expect(await index.scan("games")).toEqual({ hashed: 0, removed: 0, unchanged: 0, skipped: 1 });
    expect(index.manifest("games").files).toEqual([]);

    now = mtime.getTime() + 1_500;
    expect(await index.scan("games")).toEqual({ hashed: 1, removed: 0, unchanged: 0, skipped: 0 });
  });

  test("a missing root is an empty category, and is not created", async () => {
    const games = category("games");
    write(games.root, "a.bin", "a");
    const index = open([games, category("training")]);
    await index.scan();
    expect(index.digest("training")).toMatchObject({ files: 0, bytes: 0 });
    expect(existsSync(join(dir, "training"))).toBe(false);

    rmSync(games.root, { recursive: true });
    expect(await index.scan("games")).toEqual({ hashed: 0, removed: 1, unchanged: 0, skipped: 0 });
    expect(existsSync(games.root)).toBe(false);
    expect(rowCount()).toBe(0);
  });

  test("concurrent scans of a category do not overlap: each file is hashed once", async () => {
    const games = category("games");
    for (let i = 0; i < 20; i++) write(games.root, `f${i}.bin`, `file ${i}`);
    const index = open([games]);
    const first = index.scan("games");
    const second = index.scan("games");
    await Promise.resolve();
    const third = index.scan("games");
    const results = await Promise.all([first, second, third]);
    // Callers that arrive before a scan starts share it; a later one waits for it and runs the next.
    expect(results[1]).toBe(results[0]);
    const distinct = [...new Set(results)];
    expect(distinct.reduce((n, r) => n + r.hashed, 0)).toBe(20);
    expect(rowCount()).toBe(20);
  });

  test("a file recorded by sync is not hashed again, and the digest follows", async () => {
    const games = category("games");
    write(games.root, "a.bin", "a");
    const index = open([games]);
    await index.scan("games");
    const before = index.digest("games");

    const data = randomBytes(PIECE_BYTES + 1);
    write(games.root, "fetched.bin", data);
    const entry: FileEntry = {
      path: "fetched.bin",
      size: data.length,
      mtimeMs: statSync(join(games.root, "fetched.bin")).mtimeMs,
      sha256: sha(data),
    };
    index.record("games", entry, piecesOf(data));
    expect(index.digest("games")).not.toEqual(before);
    expect(index.findBySha(sha(data))?.pieces).toEqual(piecesOf(data));
    expect(await index.scan("games")).toEqual({ hashed: 0, removed: 0, unchanged: 2, skipped: 0 });
  });

  test("an unknown category is refused", async () => {
    const index = open([category("games")]);
    expect(() => index.manifest("nope")).toThrow('unknown data category "nope"');
    await expect(index.scan("nope")).rejects.toThrow('unknown data category "nope"');
  });

  test("scanning many files leaves the event loop free", async () => {
    const games = category("games");
    for (let i = 0; i < 2_000; i++) write(games.root, `d${i % 20}/f${i}.bin`, `file ${i}`);
    const index = open([games]);
    const { result, maxGapMs } = await loopGapDuring(() => index.scan("games"));
    expect(result).toMatchObject({ hashed: 2_000 });
    expect(maxGapMs).toBeLessThan(500);
  }, 60_000);
});

describe("wantedFrom", () => {
  const entry = (path: string, sha256: string, mtimeMs: number): FileEntry => ({
    path,
    size: 1,
    mtimeMs,
    sha256: sha256.repeat(64),
  });

  test("a path this node lacks is wanted", () => {
    expect(wantedFrom([], [entry("a", "1", 5)])).toEqual([entry("a", "1", 5)]);
  });

  test("the same content at a path is never wanted, whatever its mtime", () => {
    expect(wantedFrom([entry("a", "1", 5)], [entry("a", "1", 9)])).toEqual([]);
    expect(wantedFrom([entry("a", "1", 9)], [entry("a", "1", 5)])).toEqual([]);
  });

  test("other content at a held path is wanted only when the remote copy is newer", () => {
    expect(wantedFrom([entry("a", "1", 5)], [entry("a", "2", 9)])).toEqual([entry("a", "2", 9)]);
    expect(wantedFrom([entry("a", "1", 9)], [entry("a", "2", 5)])).toEqual([]);
    expect(wantedFrom([entry("a", "1", 5)], [entry("a", "2", 5)])).toEqual([]);
  });

  test("paths are judged one by one", () => {
    const local = [entry("same", "1", 1), entry("old", "1", 1), entry("new", "1", 9)];
    const remote = [entry("same", "1", 1), entry("old", "2", 5), entry("new", "2", 5), entry("fresh", "3", 1)];
    expect(wantedFrom(local, remote)).toEqual([entry("old", "2", 5), entry("fresh", "3", 1)]);
  });
});
