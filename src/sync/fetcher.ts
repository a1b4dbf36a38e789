import { constants } from "node:fs";
import { type FileHandle, mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import * as v from "valibot";
import { bytesSchema, intIn } from "../net/bounds.ts";
import { MAX_PIECE_BYTES, MAX_PIECES, type PieceMap, pieceCount, sha256Schema } from "./model.ts";
import { choosePiece, nextReturn } from "./piece-choice.ts";

/** Checks a received piece against its SHA-256 and writes it where it belongs (the Hasher, off the main thread). */
export interface PieceWriter {
  /**
   * `actual` is null once written, or the piece's actual SHA-256 when it does not match (nothing written).
   * Takes over `bytes`, and hands back its buffer for the next piece.
   */
  writePiece(
    path: string,
    position: number,
    bytes: Uint8Array,
    sha256: string,
  ): Promise<{ actual: string | null; buffer: ArrayBuffer }>;
}

/** Somewhere one file's bytes can be read from: a peer holding it (whole or in part), or its origin. */
export interface PieceSource {
  id: string;
  /** Whether it can serve this piece now; absent means every piece. */
  has?(piece: number): boolean;
  /** Reads the range into the start of `into` (at least as long as the range) and returns that part of it. */
  fetchRange(start: number, endExclusive: number, signal: AbortSignal, into: Uint8Array): Promise<Uint8Array>;
  /** Releases what it holds (a refresher, say) once the attempt that asked for it has ended. */
  stop?(): void;
}

export interface FetchPiecesOptions {
  map: PieceMap;
  partialPath: string;
  writer: PieceWriter;
  /** Pieces already verified in the partial file: never fetched again. */
  done: ReadonlySet<number>;
  /** In order of preference when all else is equal: the caller puts the origin last so peers carry the load. */
  sources: readonly PieceSource[];
  maxInFlight?: number;
  perSourceInFlight?: number;
  /** Failures of one piece (from any sources) that end the whole fetch. */
  maxPieceFailures?: number;
  /** A failing source sits out base·2^(failures in a row − 1), at most max, with jitter. */
  penaltyBaseMs?: number;
  penaltyMaxMs?: number;
  /** A source that takes longer than this for one piece has failed it. */
  pieceTimeoutMs?: number;
  /**
   * How long to keep asking the sources' `has` again when none holds a piece still wanted (a swarm
   * peer may get it soon) before the fetch fails.
   */
  holderWaitMs?: number;
  signal?: AbortSignal;
  /**
   * After a piece is verified and written: the caller records it (sidecar, progress). The fetch goes on
   * meanwhile, and returns only once every record has been made; a failed one ends the fetch.
   */
  onPiece?: (index: number, bytes: number, sourceId: string) => void | Promise<void>;
  /** Uniform in [0, 1): backoff jitter and where in the file this receiver starts. */
  random?: () => number;
  /** Fetch in file order from the first piece (a lone receiver: the disk sees one sequential write). */
  inOrder?: boolean;
  /**
   * Written bytes after which the partial file is flushed (fdatasync) in the background, so the flush
   * before the commit has little left to do. 0: never.
   */
  flushEveryBytes?: number;
  now?: () => number;
  /** The piece scheduler's decision (`choosePiece`); the simulator plants faulty ones to show it catches them. */
  choose?: typeof choosePiece;
  /** Resolves after `ms`, or as soon as `signal` aborts: the waits for sources and each piece's deadline. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface FetchPiecesResult {
  piecesFetched: number;
  bytesFetched: number;
  /** Pieces rejected or not delivered, by any source. */
  failures: number;
  /** Pieces delivered, by source id. */
  bySource: Record<string, number>;
}

/** Flushing this often keeps the flush before the commit short without slowing the writes. */
const DEFAULT_FLUSH_EVERY_BYTES = 64 * 1024 * 1024;

interface SourceState {
  source: PieceSource;
  order: number;
  inFlight: number;
  failures: number;
  /** Failures since its last good piece: what its penalty grows with. */
  streak: number;
  notBefore: number;
}

interface PieceFailures {
  count: number;
  sources: Set<string>;
  last: string;
}

/** Abortable wait; resolves (never rejects) when aborted, so the caller checks the signal itself. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Byte range [start, end) of piece `index`. */
export function pieceRange(map: Pick<PieceMap, "size" | "pieceBytes">, index: number): [number, number] {
  const start = index * map.pieceBytes;
  return [start, Math.min(map.size, start + map.pieceBytes)];
}

/**
 * Downloads the pieces of one file that `done` lacks into `partialPath`, from several sources at once.
 * Rarest piece first (fewest sources hold it), then in file order from a random starting piece, so
 * receivers that start together ask the origin for different pieces and can then trade among
 * themselves. Every piece is checked against its SHA-256 before it is written (by `writer`, off the main
 * thread); a bad or failed piece benches its source for a growing while and is asked of another source.
 */
export async function fetchPieces(opts: FetchPiecesOptions): Promise<FetchPiecesResult> {
  const { map } = opts;
  const total = pieceCount(map.size, map.pieceBytes);
  if (map.pieces.length !== total)
    throw new Error(`the piece map lists ${map.pieces.length} pieces; a ${map.size}-byte file has ${total}`);
  const maxInFlight = Math.max(1, opts.maxInFlight ?? 4);
  const perSource = Math.max(1, opts.perSourceInFlight ?? 2);
  const maxPieceFailures = opts.maxPieceFailures ?? 8;
  const penaltyBaseMs = opts.penaltyBaseMs ?? 500;
  const penaltyMaxMs = opts.penaltyMaxMs ?? 30_000;
  const pieceTimeoutMs = opts.pieceTimeoutMs ?? 300_000;
  const holderWaitMs = opts.holderWaitMs ?? 30_000;
  const flushEveryBytes = opts.flushEveryBytes ?? DEFAULT_FLUSH_EVERY_BYTES;
  const random = opts.random ?? Math.random;
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? abortableSleep;
  const choose = opts.choose ?? choosePiece;
  const signal = opts.signal ?? new AbortController().signal;

  const sources: SourceState[] = opts.sources.map((source, order) => ({
    source,
    order,
    inFlight: 0,
    failures: 0,
    streak: 0,
    notBefore: 0,
  }));
  const offset = opts.inOrder ? 0 : Math.floor(random() * total) % total;
  const missing = new Set<number>();
  // An empty file's only piece is empty: nothing to ask anyone for.
  if (map.size > 0)
    for (let k = 0; k < total; k++) {
      const i = (offset + k) % total;
      if (!opts.done.has(i)) missing.add(i);
    }
  const failed = new Map<number, PieceFailures>();
  const inFlight = new Map<number, Promise<void>>();
  const result: FetchPiecesResult = { piecesFetched: 0, bytesFetched: 0, failures: 0, bySource: {} };
  let fatal: Error | null = null;
  /** Stops the pieces in flight once the fetch has failed as a whole. */
  const stop = new AbortController();
  const running = AbortSignal.any([signal, stop.signal]);
  const failAll = (e: Error) => {
    fatal ??= e;
    stop.abort(fatal);
  };

  const penalise = (s: SourceState, piece: number, reason: string) => {
    s.failures++;
    s.streak++;
    const cap = Math.min(penaltyMaxMs, penaltyBaseMs * 2 ** (s.streak - 1));
    s.notBefore = now() + cap * (0.5 + random() / 2);
    result.failures++;
    const f = failed.get(piece) ?? { count: 0, sources: new Set<string>(), last: "" };
    f.count++;
    f.sources.add(s.source.id);
    f.last = `source "${s.source.id}": ${reason}`;
    failed.set(piece, f);
    if (f.count >= maxPieceFailures)
      failAll(new Error(`piece ${piece} failed ${f.count} times; the last from ${f.last}`));
  };

  /** Written since the last background flush began; at most one flush runs at a time. */
  let unflushed = 0;
  let flushing: Promise<void> | null = null;
  const flushBehind = (handle: FileHandle, bytes: number) => {
    unflushed += bytes;
    if (flushEveryBytes <= 0 || flushing || unflushed < flushEveryBytes) return;
    unflushed = 0;
    flushing = handle
      .datasync()
      // A failed flush here is not fatal: the flush before the commit is the one that must succeed.
      .catch(() => {})
      .finally(() => {
        flushing = null;
      });
  };

  /**
   * Piece buffers, reused: a fresh 4 MiB buffer per piece costs the kernel far more in page faults and
   * zeroing than the piece costs to hash. A buffer comes back from the writer with its answer; one whose
   * fetch failed is dropped, in case the source still holds on to it.
   */
  const buffers: ArrayBuffer[] = [];
  const takeBuffer = () => new Uint8Array(buffers.pop() ?? new ArrayBuffer(map.pieceBytes));
  const giveBuffer = (buffer: ArrayBuffer) => {
    if (buffer.byteLength === map.pieceBytes && buffers.length < maxInFlight) buffers.push(buffer);
  };
  /** Records of pieces (sidecar, progress) still being made. */
  const recording = new Set<Promise<void>>();

  const fetchOne = async (handle: FileHandle, piece: number, s: SourceState): Promise<void> => {
    const [start, end] = pieceRange(map, piece);
    let bytes: Uint8Array;
    const slow = new AbortController();
    // The deadline runs on the injected sleep, so a simulated clock drives it like every other wait here.
    const ended = new AbortController();
    void sleep(pieceTimeoutMs, ended.signal).then(() => {
      if (!ended.signal.aborted) slow.abort();
    });
    s.inFlight++;
    try {
      bytes = await s.source.fetchRange(start, end, AbortSignal.any([running, slow.signal]), takeBuffer());
      if (bytes.length !== end - start) throw new Error(`sent ${bytes.length} bytes of a ${end - start}-byte piece`);
    } catch (e) {
      if (running.aborted) return;
      // A busy source (all its upload slots taken, or the piece not in yet) is asked again later, not blamed.
      if (e instanceof SourceBusy) s.notBefore = now() + e.retryAfterMs * (0.5 + random());
      else penalise(s, piece, slow.signal.aborted ? `no answer within ${pieceTimeoutMs} ms` : (e as Error).message);
      return;
    } finally {
      ended.abort();
      s.inFlight--;
    }
    let actual: string | null;
    try {
      // No fsync per piece: a process crash keeps the page cache, and after a power loss the resume
      // checks every piece the sidecar claims against its hash again.
      const written = await opts.writer.writePiece(opts.partialPath, start, bytes, map.pieces[piece] as string);
      giveBuffer(written.buffer);
      actual = written.actual;
    } catch (e) {
      // This node's own disk (or its hashing workers, stopped with the node): no source is to blame.
      if (!running.aborted) failAll(e as Error);
      return;
    }
    if (running.aborted) return;
    if (actual !== null) {
      penalise(s, piece, `piece ${piece} does not match its SHA-256 (got ${actual.slice(0, 12)}…)`);
      return;
    }
    s.streak = 0;
    missing.delete(piece);
    result.piecesFetched++;
    result.bytesFetched += end - start;
    result.bySource[s.source.id] = (result.bySource[s.source.id] ?? 0) + 1;
    flushBehind(handle, end - start);
    if (!opts.onPiece) return;
    const record = (async () => opts.onPiece?.(piece, end - start, s.source.id))()
      .catch((e) => failAll(e as Error))
      .finally(() => recording.delete(record));
    recording.add(record);
  };

  await mkdir(dirname(opts.partialPath), { recursive: true });
  const handle = await open(opts.partialPath, constants.O_RDWR | constants.O_CREAT, 0o644);
  try {
    await handle.truncate(map.size);
    let unservedSince: number | null = null;
    while (!running.aborted) {
      while (inFlight.size < maxInFlight) {
        const pick = choose({
          missing,
          inFlight,
          sources,
          tried: (piece) => failed.get(piece)?.sources,
          perSource,
          now: now(),
        });
        if (!pick) break;
        inFlight.set(
          pick.piece,
          fetchOne(handle, pick.piece, pick.source).finally(() => inFlight.delete(pick.piece)),
        );
      }
      if (missing.size === 0 && inFlight.size === 0) break;
      let wakeAt = inFlight.size < maxInFlight ? nextReturn({ missing, inFlight, sources, now: now() }) : null;
      if (inFlight.size > 0 || wakeAt !== null) unservedSince = null;
      else {
        // Nothing to ask anyone for now: look again shortly, until holders have been missing too long.
        const t = now();
        unservedSince ??= t;
        if (t - unservedSince >= holderWaitMs) throw new Error(unservedMessage(missing, failed, sources.length));
        wakeAt = Math.min(t + penaltyBaseMs, unservedSince + holderWaitMs);
      }
      const wake = new AbortController();
      const waits = [...inFlight.values()];
      if (wakeAt !== null) waits.push(sleep(wakeAt - now(), AbortSignal.any([running, wake.signal])));
      await Promise.race(waits);
      wake.abort();
    }
  } finally {
    await Promise.allSettled(inFlight.values());
    await Promise.allSettled(recording);
    await flushing;
    await handle.close();
  }
  signal.throwIfAborted();
  if (fatal) throw fatal;
  return result;
}

function unservedMessage(missing: Set<number>, failed: Map<number, PieceFailures>, sourceCount: number): string {
  if (sourceCount === 0) return "no source holds this file";
  const pieces = [...missing].sort((a, b) => a - b);
  const shown = pieces.slice(0, 5).join(", ") + (pieces.length > 5 ? ` and ${pieces.length - 5} more` : "");
  const last = pieces.map((p) => failed.get(p)?.last).find((m) => m !== undefined);
  return `none of the ${sourceCount} sources holds piece ${shown}${last ? `; the last failure: ${last}` : ""}`;
}

// ---- resuming and finishing ----------------------------------------------------------------------

/** Which pieces of a partial file are verified, written beside it so a restarted receiver resumes. */
export interface Sidecar {
  sha256: string;
  size: number;
  pieceBytes: number;
  done: number[];
}

/** On disk, `done` is runs of consecutive pieces [first, end): small however large the file. */
const sidecarFileSchema = v.object({
  sha256: sha256Schema,
  size: bytesSchema,
  pieceBytes: intIn(1, MAX_PIECE_BYTES),
  runs: v.pipe(v.array(v.tuple([intIn(0, MAX_PIECES), intIn(0, MAX_PIECES)])), v.maxLength(MAX_PIECES)),
});

export function sidecarPath(partialPath: string): string {
  return `${partialPath}.pieces.json`;
}

/** The sidecar at `path`, or null when there is none or it cannot be trusted. */
export async function readSidecar(path: string): Promise<Sidecar | null> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, "utf8"));
  } catch {
    return null;
  }
  const parsed = v.safeParse(sidecarFileSchema, raw);
  if (!parsed.success) return null;
  const { sha256, size, pieceBytes, runs } = parsed.output;
  const total = pieceCount(size, pieceBytes);
  const done: number[] = [];
  // Runs in order and apart, so a corrupt sidecar cannot make this loop longer than the file has pieces.
  let previousEnd = 0;
  for (const [first, end] of runs) {
    if (first < previousEnd || end <= first || end > total) return null;
    previousEnd = end;
    for (let i = first; i < end; i++) done.push(i);
  }
  return { sha256, size, pieceBytes, done };
}

/** Replaces the sidecar atomically: a crash leaves the old one or the new one, never half of either. */
export async function writeSidecar(path: string, sidecar: Sidecar): Promise<void> {
  const sorted = [...new Set(sidecar.done)].sort((a, b) => a - b);
  const runs: [number, number][] = [];
  for (const i of sorted) {
    const last = runs.at(-1);
    if (last && last[1] === i) last[1] = i + 1;
    else runs.push([i, i + 1]);
  }
  const { sha256, size, pieceBytes } = sidecar;
  const tmp = `${path}.tmp`;
  await mkdir(dirname(path), { recursive: true });
  await writeFile(tmp, JSON.stringify({ sha256, size, pieceBytes, runs }));
  await rename(tmp, path);
}

/** Thrown by a source that cannot serve now but may shortly: no failure is counted against it. */
export class SourceBusy extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
    this.name = "SourceBusy";
  }
}

/** Moves the verified partial file into place in one rename (same filesystem) and drops its sidecar. */
export async function commitFile(partialPath: string, finalPath: string): Promise<void> {
  const handle = await open(partialPath, "r+");
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await mkdir(dirname(finalPath), { recursive: true });
  await rename(partialPath, finalPath);
  await rm(sidecarPath(partialPath), { force: true });
}
