import { errorResponse, jsonResponse } from "../net/errors.ts";
import { PIECE_BYTES } from "./model.ts";
import { RATE_CHUNK_BYTES, type RateLimiter, type Slots } from "./throttle.ts";

/** A file this node can serve. A partially downloaded one says which pieces it already holds, verified. */
export interface ServedFile {
  absPath: string;
  size: number;
  sha256: string;
  /** Absent: the file is complete. */
  held?: (piece: number) => boolean;
  /** Resolves true once `piece` is held, false if it will not be (or `signal` aborted). */
  waitFor?: (piece: number, signal: AbortSignal) => Promise<boolean>;
}

export interface ServeOptions {
  uploads: Slots;
  rate: RateLimiter;
  pieceBytes?: number;
  /** How long a request for pieces not yet held waits for them before 409. */
  waitMs?: number;
}

export const DEFAULT_PIECE_WAIT_MS = 10_000;
const RETRY_AFTER_S = 1;

type ByteRange = { start: number; end: number };
type RangeRequest = { ok: true; range: ByteRange | null } | { ok: false; reason: string };

/**
 * Answers a GET for `target` honouring a single HTTP Range. The upload slot taken here is released exactly once:
 * when the last byte has been handed to the server, when the client goes away, or when anything fails first.
 */
export async function serveFileRange(
  request: Request,
  target: ServedFile | null,
  opts: ServeOptions,
): Promise<Response> {
  if (!target) return errorResponse(404, "not_found", "this node serves no file with that SHA-256");
  const size = target.size;
  const parsed = parseRange(request.headers.get("range"), size);
  if (!parsed.ok) {
    return jsonResponse(
      416,
      { error: "range_not_satisfiable", message: parsed.reason },
      { "content-range": `bytes */${size}` },
    );
  }
  const range = parsed.range ?? { start: 0, end: size };
  const headers: Record<string, string> = {
    "content-type": "application/octet-stream",
    "accept-ranges": "bytes",
    // Bun 1.4 drops this for a stream body and frames it chunked (oven-sh/bun#10507), which still shows a
    // truncated body as an error; a client learns the length from Content-Range or the manifest.
    "content-length": String(range.end - range.start),
  };
  if (parsed.range) headers["content-range"] = `bytes ${range.start}-${range.end - 1}/${size}`;
  const status = parsed.range ? 206 : 200;
  if (range.end === range.start) return new Response(null, { status, headers });

  const pieceBytes = opts.pieceBytes ?? PIECE_BYTES;
  const pieces = { first: Math.floor(range.start / pieceBytes), last: Math.floor((range.end - 1) / pieceBytes) };
  const missing = firstMissing(target, pieces.first, pieces.last);
  if (missing !== null && !target.waitFor) return pieceMissing(target, missing, pieceBytes, null);

  if (!opts.uploads.tryAcquire()) {
    return jsonResponse(
      503,
      {
        error: "busy",
        message: `all ${opts.uploads.limit} upload slots are in use; retry in ${RETRY_AFTER_S} s`,
      },
      { "retry-after": String(RETRY_AFTER_S) },
    );
  }
  let handedOff = false;
  try {
    if (missing !== null && target.waitFor) {
      const waitMs = opts.waitMs ?? DEFAULT_PIECE_WAIT_MS;
      const stillMissing = await waitForPieces(target.waitFor, target, missing, pieces.last, waitMs, request.signal);
      if (stillMissing !== null) return pieceMissing(target, stillMissing, pieceBytes, waitMs);
    }
    const body = fileBody(target.absPath, range, opts.rate, request.signal, () => opts.uploads.release());
    handedOff = true;
    return new Response(body, { status, headers });
  } finally {
    if (!handedOff) opts.uploads.release();
  }
}

/** RFC 9110 byte ranges, one at a time; `end` is exclusive. Multiple ranges are refused rather than served whole. */
function parseRange(header: string | null, size: number): RangeRequest {
  if (header === null) return { ok: true, range: null };
  const named = JSON.stringify(header);
  if (header.includes(",")) return { ok: false, reason: `${named} asks for several ranges; ask for one at a time` };
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/i.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) {
    return { ok: false, reason: `${named} is not a byte range such as "bytes=0-1023", "bytes=1024-" or "bytes=-512"` };
  }
  const beyond = { ok: false, reason: `${named} lies outside the file's ${size} bytes` } as const;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return beyond;
    return { ok: true, range: { start: Math.max(0, size - suffix), end: size } };
  }
  const start = Number(m[1]);
  if (m[2] !== "" && Number(m[2]) < start) return { ok: false, reason: `${named} ends before it starts` };
  if (start >= size) return beyond;
  const end = m[2] === "" ? size : Math.min(size, Number(m[2]) + 1);
  return { ok: true, range: { start, end } };
}

function firstMissing(target: ServedFile, first: number, last: number): number | null {
  if (!target.held) return null;
  for (let piece = first; piece <= last; piece++) if (!target.held(piece)) return piece;
  return null;
}

/** Waits for the pieces one at a time (one waiter per request), all within `waitMs`; returns the first that did not come. */
async function waitForPieces(
  waitFor: NonNullable<ServedFile["waitFor"]>,
  target: ServedFile,
  from: number,
  last: number,
  waitMs: number,
  clientGone: AbortSignal,
): Promise<number | null> {
  const signal = AbortSignal.any([clientGone, AbortSignal.timeout(waitMs)]);
  for (let piece = from; piece <= last; piece++) {
    if (target.held?.(piece)) continue;
    let arrived: boolean;
    try {
      arrived = await waitFor(piece, signal);
    } catch (e) {
      if (!signal.aborted) throw e;
      arrived = false;
    }
    if (!arrived) return piece;
  }
  return null;
}

function pieceMissing(target: ServedFile, piece: number, pieceBytes: number, waitedMs: number | null): Response {
  const start = piece * pieceBytes;
  const end = Math.min(target.size, start + pieceBytes) - 1;
  const waited = waitedMs === null ? "" : ` after waiting up to ${waitedMs} ms`;
  return errorResponse(
    409,
    "piece_missing",
    `piece ${piece} (bytes ${start}-${end}) of ${target.sha256} is not held here yet${waited}`,
    { piece },
  );
}

/**
 * The body, read from disk as the client takes it. Unlimited, it passes Bun's file chunks straight through;
 * limited, it paces them in RATE_CHUNK_BYTES. On loopback it moved 1 GiB as fast as
 * `new Response(Bun.file(...).slice(...))` (sendfile: about twice the server CPU, but the same client-bound
 * 2-3.5 GB/s) and, unlike it, tells when the transfer ends, which the upload slot needs.
 */
function fileBody(
  path: string,
  range: ByteRange,
  rate: RateLimiter,
  clientGone: AbortSignal,
  release: () => void,
): ReadableStream<Uint8Array> {
  const expected = range.end - range.start;
  const stop = new AbortController();
  const openReader = () => Bun.file(path).slice(range.start, range.end).stream().getReader();
  let reader: ReturnType<typeof openReader> | undefined;
  let sent = 0;
  let finished = false;
  const finish = (reason?: unknown) => {
    if (finished) return;
    finished = true;
    clientGone.removeEventListener("abort", onClientGone);
    stop.abort(reason);
    reader?.cancel(reason).catch(() => {});
    release();
  };
  const onClientGone = () => finish(clientGone.reason);
  if (clientGone.aborted) finish(clientGone.reason);
  else clientGone.addEventListener("abort", onClientGone, { once: true });

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          if (stop.signal.aborted) throw stop.signal.reason;
          reader ??= openReader();
          const { done, value } = await reader.read();
          if (done) throw new Error(`${path} ended after ${sent} of the ${expected} bytes promised`);
          if (rate.unlimited) {
            controller.enqueue(value);
          } else {
            for (let at = 0; at < value.byteLength; at += RATE_CHUNK_BYTES) {
              const part = value.subarray(at, at + RATE_CHUNK_BYTES);
              await rate.take(part.byteLength, stop.signal);
              controller.enqueue(part);
            }
          }
          sent += value.byteLength;
          if (sent >= expected) {
            controller.close();
            finish();
          }
        } catch (e) {
          controller.error(e);
          finish(e);
        }
      },
      cancel(reason) {
        finish(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
