// The hashing Worker: streams one file at a time and answers its whole-file and per-piece SHA-256.
import { open } from "node:fs/promises";
import { PIECE_BYTES } from "./model.ts";

export interface HashRequest {
  id: number;
  path: string;
}

export type HashReply = { id: number; sha256: string; pieces: string[]; size: number } | { id: number; error: string };

/** Divides PIECE_BYTES, so a block never spans more than one piece boundary at its end. */
const BLOCK_BYTES = 1024 * 1024;

declare const self: Worker;

async function hash(path: string): Promise<{ sha256: string; pieces: string[]; size: number }> {
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

self.onmessage = async (event: MessageEvent<HashRequest>) => {
  const { id, path } = event.data;
  let reply: HashReply;
  try {
    reply = { id, ...(await hash(path)) };
  } catch (err) {
    reply = { id, error: err instanceof Error ? err.message : String(err) };
  }
  self.postMessage(reply);
};
