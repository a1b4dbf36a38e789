import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TraceRecord } from "../../src/observability/trace.ts";
import {
  commitFile,
  fetchPieces,
  type PieceSource,
  pieceRange,
  readSidecar,
  sidecarPath,
  writeSidecar,
} from "../../src/sync/fetcher.ts";
import { Hasher } from "../../src/sync/hasher.ts";
import type { PieceMap } from "../../src/sync/model.ts";
import { SyncSession, type SyncSessionOptions } from "../../src/sync/session.ts";

const PIECE = 1024;
/** 11 pieces, the last one short. */
const SIZE = 10 * PIECE + 300;

const sha = (bytes: Uint8Array) => new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
const hashFile = async (path: string) => sha(new Uint8Array(await Bun.file(path).arrayBuffer()));

function content(size = SIZE, seed = 7): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

function mapOf(bytes: Uint8Array, pieceBytes = PIECE): PieceMap {
  const pieces: string[] = [];
  for (let at = 0; at < Math.max(1, bytes.length); at += pieceBytes)
    pieces.push(sha(bytes.subarray(at, at + pieceBytes)));
  return { sha256: sha(bytes), size: bytes.length, pieceBytes, pieces };
}

interface Behaviour {
  /** Pieces this source can serve; all when absent. */
  holds?: ReadonlySet<number>;
  /** Flip one byte of these pieces in every answer. */
  corrupts?: ReadonlySet<number>;
  /** Fail every request with this error. */
  throws?: string;
  /** Requests from this one on (counting from 0) hang until aborted. */
  hangsFrom?: number;
}

/** A transport double: serves byte ranges out of memory, misbehaving as told, and logs what it was asked. */
class MemorySource implements PieceSource {
  readonly asked: number[] = [];
  readonly has?: (piece: number) => boolean;
  private hung: (() => void) | null = null;
  /** Resolves when a request starts to hang. */
  readonly hanging: Promise<void>;

  constructor(
    readonly id: string,
    private readonly bytes: Uint8Array,
    private readonly behaviour: Behaviour = {},
  ) {
    const holds = behaviour.holds;
    if (holds) this.has = (piece) => holds.has(piece);
    this.hanging = new Promise((resolve) => {
      this.hung = resolve;
    });
  }

  async fetchRange(start: number, end: number, signal: AbortSignal, into: Uint8Array): Promise<Uint8Array> {
    const piece = Math.floor(start / PIECE);
    this.asked.push(piece);
    await Promise.resolve();
    if (this.behaviour.hangsFrom !== undefined && this.asked.length > this.behaviour.hangsFrom) {
      this.hung?.();
      await new Promise((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason ?? new Error("aborted")), { once: true });
      });
    }
    if (this.behaviour.throws) throw new Error(this.behaviour.throws);
    if (this.behaviour.holds && !this.behaviour.holds.has(piece)) throw new Error(`${this.id} does not hold ${piece}`);
    const out = into.subarray(0, end - start);
    out.set(this.bytes.subarray(start, end));
    if (this.behaviour.corrupts?.has(piece)) out[0] = (out[0] ?? 0) ^ 0xff;
    return out;
  }
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sync-fetch-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Checks and writes the pieces in worker threads, as a node does. */
const writer = new Hasher({ workers: 2 });
afterAll(() => writer.close());

/** Fast backoffs and a fixed starting piece, so runs are quick and their order is known. */
const quick = { penaltyBaseMs: 1, penaltyMaxMs: 5, random: () => 0, writer };

describe("fetchPieces", () => {
  test("a single correct source: every piece fetched, verified, written and reported", async () => {
    const bytes = content();
    const partialPath = join(dir, "a", "b", "file.partial");
    const reported: number[] = [];
    const src = new MemorySource("origin", bytes);
    const result = await fetchPieces({
      ...quick,
      map: mapOf(bytes),
      partialPath,
      done: new Set(),
      sources: [src],
      onPiece: (i, n, id) => {
        expect(id).toBe("origin");
        expect(n).toBe(pieceRange({ size: SIZE, pieceBytes: PIECE }, i)[1] - i * PIECE);
        reported.push(i);
      },
    });
    expect(new Uint8Array(readFileSync(partialPath))).toEqual(bytes);
    expect(reported.sort((a, b) => a - b)).toEqual([...Array(11).keys()]);
    expect(result).toEqual({ piecesFetched: 11, bytesFetched: SIZE, failures: 0, bySource: { origin: 11 } });
  });

  test("a corrupt piece is rejected and fetched again from another source; the file comes out right", async () => {
    const bytes = content();
    const partialPath = join(dir, "file.partial");
    const bad = new MemorySource("bad", bytes, { corrupts: new Set([3]) });
    const good = new MemorySource("good", bytes);
    const result = await fetchPieces({
      ...quick,
      map: mapOf(bytes),
      partialPath,
      done: new Set(),
      sources: [bad, good],
      maxInFlight: 1,
    });
    expect(new Uint8Array(readFileSync(partialPath))).toEqual(bytes);
    // One piece at a time: the preferred source gets piece 3 first, corrupts it, and the other serves it.
    expect(bad.asked.filter((p) => p === 3)).toHaveLength(1);
    expect(good.asked).toContain(3);
    expect(result.failures).toBe(1);
    expect(result.piecesFetched).toBe(11);
  });

  test("a source that throws is benched; the pieces come from the others", async () => {
    const bytes = content();
    const partialPath = join(dir, "file.partial");
    const dead = new MemorySource("dead", bytes, { throws: "connection refused" });
    const good = new MemorySource("good", bytes);
    const result = await fetchPieces({
      ...quick,
      map: mapOf(bytes),
      partialPath,
      done: new Set(),
      sources: [dead, good],
    });
    expect(new Uint8Array(readFileSync(partialPath))).toEqual(bytes);
    expect(result.bySource).toEqual({ good: 11 });
    expect(result.failures).toBe(dead.asked.length);
    expect(dead.asked.length).toBeGreaterThan(0);
  });

  test("a source is asked only for the pieces it has", async () => {
    const bytes = content();
    const partialPath = join(dir, "file.partial");
    const evens = new Set([0, 2, 4, 6, 8, 10]);
    const odds = new Set([1, 3, 5, 7, 9]);
    const a = new MemorySource("evens", bytes, { holds: evens });
    const b = new MemorySource("odds", bytes, { holds: odds });
    const result = await fetchPieces({ ...quick, map: mapOf(bytes), partialPath, done: new Set(), sources: [a, b] });
    expect(new Uint8Array(readFileSync(partialPath))).toEqual(bytes);
    expect(a.asked.every((p) => evens.has(p))).toBe(true);
    expect(b.asked.every((p) => odds.has(p))).toBe(true);
    expect(result).toMatchObject({ failures: 0, bySource: { evens: 6, odds: 5 } });
  });

  test("the rarest pieces go first: what only the origin holds is asked of it before what a peer also has", async () => {
    const bytes = content();
    const partialPath = join(dir, "file.partial");
    const peerHolds = new Set([0, 1, 2, 3, 4, 5, 6, 7]);
    const peer = new MemorySource("peer", bytes, { holds: peerHolds });
    const origin = new MemorySource("origin", bytes);
    await fetchPieces({
      ...quick,
      map: mapOf(bytes),
      partialPath,
      done: new Set(),
      sources: [peer, origin],
      maxInFlight: 1,
    });
    expect(new Uint8Array(readFileSync(partialPath))).toEqual(bytes);
    expect(origin.asked.slice(0, 3)).toEqual([8, 9, 10]);
    expect(peer.asked.length).toBeGreaterThan(0);
  });

  test("several sources are used at once for a multi-piece file", async () => {
    const bytes = content();
    const partialPath = join(dir, "file.partial");
    const a = new MemorySource("a", bytes);
    const b = new MemorySource("b", bytes);
    const result = await fetchPieces({
      ...quick,
      map: mapOf(bytes),
      partialPath,
      done: new Set(),
      sources: [a, b],
      maxInFlight: 4,
      perSourceInFlight: 2,
    });
    expect(new Uint8Array(readFileSync(partialPath))).toEqual(bytes);
    expect(result.bySource.a).toBeGreaterThan(0);
    expect(result.bySource.b).toBeGreaterThan(0);
    expect((result.bySource.a ?? 0) + (result.bySource.b ?? 0)).toBe(11);
  });

  test("resume: with a partial file and its sidecar, only the missing pieces are asked for", async () => {
    const bytes = content();
    const map = mapOf(bytes);
    const partialPath = join(dir, "file.partial");
    const verified = [0, 1, 2, 5, 10];
    const partial = new Uint8Array(SIZE).fill(0xee);
    for (const i of verified) {
      const [s, e] = pieceRange(map, i);
      partial.set(bytes.subarray(s, e), s);
    }
    writeFileSync(partialPath, partial);
    await writeSidecar(sidecarPath(partialPath), { sha256: map.sha256, size: SIZE, pieceBytes: PIECE, done: verified });
    const sidecar = await readSidecar(sidecarPath(partialPath));
    expect(sidecar?.done).toEqual(verified);

    const src = new MemorySource("origin", bytes);
    await fetchPieces({ ...quick, map, partialPath, done: new Set(sidecar?.done), sources: [src] });
    expect(src.asked.sort((a, b) => a - b)).toEqual([3, 4, 6, 7, 8, 9]);
    expect(new Uint8Array(readFileSync(partialPath))).toEqual(bytes);
  });

  test("a source that does not answer within the piece timeout fails that piece; another serves it", async () => {
    const bytes = content();
    const partialPath = join(dir, "file.partial");
    const slow = new MemorySource("slow", bytes, { hangsFrom: 0 });
    const good = new MemorySource("good", bytes);
    const result = await fetchPieces({
      ...quick,
      map: mapOf(bytes),
      partialPath,
      done: new Set(),
      sources: [slow, good],
      pieceTimeoutMs: 50,
    });
    expect(new Uint8Array(readFileSync(partialPath))).toEqual(bytes);
    expect(result.bySource).toEqual({ good: 11 });
    expect(result.failures).toBeGreaterThan(0);
  });

  test("a piece that fails too often ends the fetch with the reason", async () => {
    const bytes = content();
    const bad = new MemorySource("bad", bytes, { corrupts: new Set([4]) });
    await expect(
      fetchPieces({
        ...quick,
        map: mapOf(bytes),
        partialPath: join(dir, "file.partial"),
        done: new Set(),
        sources: [bad],
        maxPieceFailures: 3,
      }),
    ).rejects.toThrow('piece 4 failed 3 times; the last from source "bad": piece 4 does not match its SHA-256');
    expect(bad.asked.filter((p) => p === 4)).toHaveLength(3);
  });

  test("when no source holds a piece yet, the fetch looks again and takes it once a peer has it", async () => {
    const bytes = content();
    const partialPath = join(dir, "file.partial");
    const peer = new MemorySource("peer", bytes);
    // The peer is itself still fetching: it has pieces 9 and 10 only some looks after everything else is in.
    let landed = 0;
    let looks = 0;
    const catchingUp: PieceSource = {
      id: "peer",
      has: (p) => p < 9 || (landed === 9 && ++looks > 3),
      fetchRange: (start, end, signal, into) => peer.fetchRange(start, end, signal, into),
    };
    await fetchPieces({
      ...quick,
      map: mapOf(bytes),
      partialPath,
      done: new Set(),
      sources: [catchingUp],
      onPiece: () => {
        landed++;
      },
    });
    expect(new Uint8Array(readFileSync(partialPath))).toEqual(bytes);
    expect(peer.asked.slice(-2)).toEqual([10, 9]);
    expect(looks).toBeGreaterThan(3);
  });

  test("pieces no source holds end the fetch once the rest is in and the wait for holders is over", async () => {
    const bytes = content();
    const partialPath = join(dir, "file.partial");
    const some = new MemorySource("some", bytes, { holds: new Set([0, 1, 2, 3, 4, 5, 6, 7, 8]) });
    const reported: number[] = [];
    await expect(
      fetchPieces({
        ...quick,
        map: mapOf(bytes),
        partialPath,
        done: new Set(),
        sources: [some],
        holderWaitMs: 20,
        onPiece: (i) => {
          reported.push(i);
        },
      }),
    ).rejects.toThrow("none of the 1 sources holds piece 9, 10");
    expect(reported).toHaveLength(9);
    await expect(
      fetchPieces({ ...quick, map: mapOf(bytes), partialPath, done: new Set(), sources: [], holderWaitMs: 0 }),
    ).rejects.toThrow("no source holds this file");
  });

  test("a piece map that does not fit the file's size is refused", async () => {
    const bytes = content();
    const map = { ...mapOf(bytes), pieces: mapOf(bytes).pieces.slice(1) };
    await expect(
      fetchPieces({
        map,
        partialPath: join(dir, "p"),
        writer,
        done: new Set(),
        sources: [new MemorySource("a", bytes)],
      }),
    ).rejects.toThrow("the piece map lists 10 pieces; a 10540-byte file has 11");
  });

  test("an empty file needs no source", async () => {
    const partialPath = join(dir, "empty.partial");
    const result = await fetchPieces({
      map: mapOf(new Uint8Array(0)),
      partialPath,
      writer,
      done: new Set(),
      sources: [],
    });
    expect(result.piecesFetched).toBe(0);
    expect(readFileSync(partialPath).length).toBe(0);
  });
});

describe("sidecar, verification and commit", () => {
  test("the sidecar round-trips, and one that cannot be trusted reads as none", async () => {
    const path = join(dir, "x.partial.pieces.json");
    const map = mapOf(content());
    expect(await readSidecar(path)).toBeNull();
    await writeSidecar(path, { sha256: map.sha256, size: SIZE, pieceBytes: PIECE, done: [9, 0, 1, 2, 4, 2] });
    expect(await readSidecar(path)).toEqual({
      sha256: map.sha256,
      size: SIZE,
      pieceBytes: PIECE,
      done: [0, 1, 2, 4, 9],
    });
    expect(existsSync(`${path}.tmp`)).toBe(false);
    writeFileSync(path, "{ not json");
    expect(await readSidecar(path)).toBeNull();
    writeFileSync(path, JSON.stringify({ sha256: map.sha256, size: SIZE, pieceBytes: PIECE, runs: [[3, 40]] }));
    expect(await readSidecar(path)).toBeNull();
  });

  test("commitFile renames into a new folder and drops the sidecar", async () => {
    const partialPath = join(dir, "f.partial");
    writeFileSync(partialPath, "data");
    writeFileSync(sidecarPath(partialPath), "{}");
    const finalPath = join(dir, "deep", "er", "f.bin");
    await commitFile(partialPath, finalPath);
    expect(readFileSync(finalPath, "utf8")).toBe("data");
    expect(existsSync(partialPath)).toBe(false);
    expect(existsSync(sidecarPath(partialPath))).toBe(false);
  });
});

describe("SyncSession", () => {
  function session(
    bytes: Uint8Array,
    sources: () => PieceSource[],
    extra: Partial<SyncSessionOptions> & { map?: PieceMap } = {},
  ) {
    const traces: TraceRecord[] = [];
    const map = extra.map ?? mapOf(bytes);
    const s = new SyncSession({
      id: "s1",
      category: "models",
      path: "net/v1.bin",
      sha256: map.sha256,
      size: bytes.length,
      finalPath: join(dir, "models", "net", "v1.bin"),
      partialPath: join(dir, "partial", `${map.sha256}.partial`),
      sources: async () => ({ map, sources: sources() }),
      hasher: writer,
      trace: (r) => traces.push(r),
      random: () => 0,
      retry: { maxAttempts: 3, baseDelayMs: 2, maxDelayMs: 10 },
      fetch: { penaltyBaseMs: 1, penaltyMaxMs: 5, maxPieceFailures: 3, holderWaitMs: 0 },
      ...extra,
    });
    return { s, traces, map, finalPath: join(dir, "models", "net", "v1.bin") };
  }
  const steps = (traces: TraceRecord[]) => traces.map((t) => `${t.from}→${t.to} on ${t.event}`);

  test("end to end: done, the file in place with the right hash, partial and sidecar gone, every step traced", async () => {
    const bytes = content();
    const { s, traces, finalPath } = session(bytes, () => [
      new MemorySource("p1", bytes),
      new MemorySource("o", bytes),
    ]);
    const outcome = await s.run();
    expect(outcome.state).toBe("done");
    expect(outcome.pieces).toEqual(mapOf(bytes).pieces);
    expect(await hashFile(finalPath)).toBe(sha(bytes));
    expect(existsSync(join(dir, "partial", `${sha(bytes)}.partial`))).toBe(false);
    expect(existsSync(sidecarPath(join(dir, "partial", `${sha(bytes)}.partial`)))).toBe(false);
    expect(steps(traces)).toEqual([
      "null→planned on create",
      "planned→fetching on start",
      "fetching→verifying on fetched",
      "verifying→committing on verified",
      "committing→done on committed",
    ]);
    for (const t of traces) {
      expect(t).toMatchObject({ machine: "sync", instance: "s1" });
      expect(t.cause).toBeTruthy();
    }
    expect(traces.map((t) => t.at)).toEqual([...traces.map((t) => t.at)].sort((a, b) => a - b));
    const status = s.status();
    expect(status).toMatchObject({ state: "done", bytesDone: SIZE, bytesTotal: SIZE, etaMs: 0, attempts: 1 });
    expect(status.sources.length).toBeGreaterThan(0);
    expect(s.partialView()).toBeNull();
  });

  test("every source corrupt: given-up after the last attempt with a clear error, nothing committed", async () => {
    const bytes = content();
    const corruptAll = new Set([...Array(11).keys()]);
    const { s, traces, finalPath } = session(bytes, () => [new MemorySource("liar", bytes, { corrupts: corruptAll })]);
    const outcome = await s.run();
    expect(outcome.state).toBe("given-up");
    const status = s.status();
    expect(status.state).toBe("given-up");
    expect(status.attempts).toBe(3);
    expect(status.lastError).toMatch(
      /^attempt 3: piece \d+ failed 3 times; the last from source "liar": piece \d+ does not match/,
    );
    expect(existsSync(finalPath)).toBe(false);
    expect(steps(traces)).toEqual([
      "null→planned on create",
      "planned→fetching on start",
      "fetching→failed on fail",
      "failed→retry-wait on fail",
      "retry-wait→fetching on retry-due",
      "fetching→failed on fail",
      "failed→retry-wait on fail",
      "retry-wait→fetching on retry-due",
      "fetching→failed on fail",
      "failed→given-up on fail",
    ]);
    expect(traces.at(-1)?.cause).toContain("all 3 attempts failed; the last: attempt 3: piece");
  });

  test("a failed attempt is retried with a fresh set of sources", async () => {
    const bytes = content();
    let calls = 0;
    const { s, traces } = session(bytes, () => {
      calls++;
      if (calls === 1) throw new Error("no holder answered for the piece map");
      return [new MemorySource("o", bytes)];
    });
    const outcome = await s.run();
    expect(outcome.state).toBe("done");
    expect(calls).toBe(2);
    expect(traces[2]?.cause).toBe("attempt 1: no holder answered for the piece map");
    expect(steps(traces).slice(2, 5)).toEqual([
      "fetching→failed on fail",
      "failed→retry-wait on fail",
      "retry-wait→fetching on retry-due",
    ]);
  });

  test("stopped mid-transfer, a new session resumes from the verified pieces instead of starting over", async () => {
    const bytes = content();
    const first = new MemorySource("o", bytes, { hangsFrom: 4 });
    const a = session(bytes, () => [first], { fetch: { maxInFlight: 1 } });
    const outcome = a.s.run();
    await first.hanging;
    expect(a.s.status()).toMatchObject({ state: "fetching", bytesDone: 4 * PIECE });
    expect(a.s.pieceMapView()?.have).toEqual([0, 1, 2, 3]);
    expect(a.s.partialView()?.held(3)).toBe(true);
    expect(a.s.partialView()?.held(4)).toBe(false);
    a.s.stop();
    expect((await outcome).state).toBe("cancelled");
    expect(a.traces.at(-1)).toMatchObject({ from: "fetching", to: "cancelled", cause: "the node is stopping" });

    const second = new MemorySource("o", bytes);
    const b = session(bytes, () => [second]);
    expect((await b.s.run()).state).toBe("done");
    expect(second.asked.sort((x, y) => x - y)).toEqual([4, 5, 6, 7, 8, 9, 10]);
    expect(b.traces[1]).toMatchObject({ to: "fetching", cause: "resuming: 4 of 11 pieces verified on disk" });
    expect(await hashFile(b.finalPath)).toBe(sha(bytes));
  });

  test("a swarm peer waiting for a piece is answered when it lands, or told no when the session ends", async () => {
    const bytes = content();
    const src = new MemorySource("o", bytes, { hangsFrom: 2 });
    const { s } = session(bytes, () => [src], { fetch: { maxInFlight: 1 } });
    const outcome = s.run();
    const view = s.partialView();
    const got = view?.waitFor(1, new AbortController().signal);
    expect(await got).toBe(true);
    await src.hanging;
    const never = view?.waitFor(9, new AbortController().signal);
    const aborted = new AbortController();
    const gaveUp = view?.waitFor(8, aborted.signal);
    aborted.abort();
    expect(await gaveUp).toBe(false);
    s.cancel("operator");
    expect(await never).toBe(false);
    expect((await outcome).state).toBe("cancelled");
  });

  test("a holder's piece map for another file is refused, and nothing is fetched", async () => {
    const bytes = content();
    const other = content(SIZE, 99);
    const src = new MemorySource("o", bytes);
    // The session asks for `bytes`; the holder describes `other`.
    const { s, finalPath } = session(bytes, () => [src], {
      map: mapOf(other),
      sha256: sha(bytes),
      retry: { maxAttempts: 1 },
    });
    const outcome = await s.run();
    expect(outcome.state).toBe("given-up");
    expect(s.status().lastError).toBe(`attempt 1: the holder describes another file: ${SIZE} bytes, ${sha(other)}`);
    expect(src.asked).toEqual([]);
    expect(existsSync(finalPath)).toBe(false);
  });

  test("after a restart, resumed pieces that the disk lost are checked, found wrong and fetched again", async () => {
    const bytes = content();
    const first = new MemorySource("o", bytes, { hangsFrom: 6 });
    const a = session(bytes, () => [first], { fetch: { maxInFlight: 1 } });
    const outcome = a.s.run();
    await first.hanging;
    a.s.stop();
    expect((await outcome).state).toBe("cancelled");
    // As after a power loss: the sidecar says pieces 0-5 are in, but piece 2 came back as zeros.
    const partialPath = join(dir, "partial", `${sha(bytes)}.partial`);
    const onDisk = readFileSync(partialPath);
    onDisk.fill(0, 2 * PIECE, 3 * PIECE);
    writeFileSync(partialPath, onDisk);

    const second = new MemorySource("o", bytes);
    const b = session(bytes, () => [second]);
    expect((await b.s.run()).state).toBe("done");
    expect(second.asked.sort((x, y) => x - y)).toEqual([2, 6, 7, 8, 9, 10]);
    expect(b.traces[1]).toMatchObject({ to: "fetching", cause: "resuming: 6 of 11 pieces verified on disk" });
    expect(b.traces[2]?.cause).toContain("1 of the 6 resumed pieces failed their check and were fetched again");
    expect(await hashFile(b.finalPath)).toBe(sha(bytes));
  });
});
