// The hashing Worker. It answers one request at a time:
//  - "file": a whole file's SHA-256 and its per-piece SHA-256s, streamed from disk (the manifest);
//  - "write-piece": a received piece checked against its SHA-256 and, if it matches, written at its offset;
//  - "check-piece": a piece already on disk checked against its SHA-256 (resuming a partial file).
// Receiving a file is hashing bound, so the pieces are hashed here, off the main thread, a few at once.
import { closeSync, constants, openSync, readSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { dirname } from "node:path";
import { PIECE_BYTES } from "./model.ts";

export type HashRequest =
  | { id: number; op: "file"; path: string }
  /** The piece is the first `length` bytes of `buffer`, which comes back with the reply for the next piece. */
  | {
      id: number;
      op: "write-piece";
      path: string;
      position: number;
      buffer: ArrayBuffer;
      length: number;
      sha256: string;
    }
  | { id: number; op: "check-piece"; path: string; position: number; length: number; sha256: string };

export type HashReply =
  | { id: number; op: "file"; sha256: string; pieces: string[]; size: number }
  /** `actual` is null when the piece matched (and was written). */
  | { id: number; op: "write-piece"; actual: string | null; buffer: ArrayBuffer }
  /** `actual` is null when the piece matched. */
  | { id: number; op: "check-piece"; actual: string | null }
  | { id: number; error: string };

/** Divides PIECE_BYTES, so a block never spans more than one piece boundary at its end. */
const BLOCK_BYTES = 1024 * 1024;

declare const self: Worker;

async function hashFile(path: string): Promise<{ sha256: string; pieces: string[]; size: number }> {
  const file = await open(path, "r");
  try {
    const block = new Uint8Array(BLOCK_BYTES);
    const whole = new Bun.CryptoHasher("sha256");
    const pieces: string[] = [];
    let piece = new Bun.CryptoHasher("sha256");
    let inPiece = 0;
    let size = 0;
    for (;;) {
      const { bytesRead } = await file.read(block, 0, BLOCK_BYTES, size);
      if (bytesRead === 0) break;
      let at = 0;
      while (at < bytesRead) {
        const take = Math.min(bytesRead - at, PIECE_BYTES - inPiece);
        const part = block.subarray(at, at + take);
        whole.update(part);
        piece.update(part);
        at += take;
        inPiece += take;
        if (inPiece === PIECE_BYTES) {
          pieces.push(piece.digest("hex"));
          piece = new Bun.CryptoHasher("sha256");
          inPiece = 0;
        }
      }
      size += bytesRead;
    }
    // An empty file still has one (empty) piece, as pieceCount() says.
    if (inPiece > 0 || pieces.length === 0) pieces.push(piece.digest("hex"));
    return { sha256: whole.digest("hex"), pieces, size };
  } finally {
    await file.close();
  }
}

const sha256Of = (bytes: Uint8Array) => new Bun.CryptoHasher("sha256").update(bytes).digest("hex");

/** O_DIRECT needs offsets, lengths and memory aligned to the device's block; 4 KiB suits them all. */
const DIRECT_ALIGN = 4096;
/** Folders whose filesystem refused O_DIRECT (tmpfs, say), or a buffer it would not take: written through the cache. */
const noDirect = new Set<string>();

function writeAt(path: string, flags: number, bytes: Uint8Array, position: number): void {
  const fd = openSync(path, flags);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off, position + off);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a piece, bypassing the page cache where it can (O_DIRECT): a received file is written once
 * and read rarely, and copying it into freshly allocated cache pages cost this VM 2-3x the CPU of the
 * whole transfer besides. The unaligned tail of the last piece, and any file where O_DIRECT fails
 * (EINVAL: the filesystem or the buffer's alignment), go through the cache. Blocking I/O is fine
 * here: this thread does nothing else meanwhile, and the main thread is not waiting on it.
 */
function writePiece(path: string, position: number, bytes: Uint8Array, expected: string): string | null {
  const actual = sha256Of(bytes);
  if (actual !== expected) return actual;
  const aligned = position % DIRECT_ALIGN === 0 ? bytes.length - (bytes.length % DIRECT_ALIGN) : 0;
  let cachedFrom = 0;
  if (aligned > 0 && !noDirect.has(dirname(path))) {
    try {
      writeAt(path, constants.O_RDWR | constants.O_DIRECT, bytes.subarray(0, aligned), position);
      cachedFrom = aligned;
    } catch (e) {
      if ((e as { code?: string }).code !== "EINVAL") throw e;
      noDirect.add(dirname(path));
    }
  }
  if (cachedFrom < bytes.length) writeAt(path, constants.O_RDWR, bytes.subarray(cachedFrom), position + cachedFrom);
  return null;
}

function checkPiece(path: string, position: number, length: number, expected: string): string | null {
  const bytes = new Uint8Array(length);
  const fd = openSync(path, "r");
  try {
    for (let off = 0; off < length; ) {
      const n = readSync(fd, bytes, off, length - off, position + off);
      if (n === 0) return "(the file ends inside this piece)";
      off += n;
    }
  } finally {
    closeSync(fd);
  }
  const actual = sha256Of(bytes);
  return actual === expected ? null : actual;
}

self.onmessage = async (event: MessageEvent<HashRequest>) => {
  const req = event.data;
  let reply: HashReply;
  try {
    switch (req.op) {
      case "file":
        reply = { id: req.id, op: "file", ...(await hashFile(req.path)) };
        break;
      case "write-piece": {
        const bytes = new Uint8Array(req.buffer, 0, req.length);
        reply = {
          id: req.id,
          op: req.op,
          actual: writePiece(req.path, req.position, bytes, req.sha256),
          buffer: req.buffer,
        };
        break;
      }
      case "check-piece":
        reply = { id: req.id, op: req.op, actual: checkPiece(req.path, req.position, req.length, req.sha256) };
        break;
    }
  } catch (err) {
    reply = { id: req.id, error: err instanceof Error ? err.message : String(err) };
  }
  self.postMessage(reply, "buffer" in reply ? [reply.buffer] : []);
};
