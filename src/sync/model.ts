import * as v from "valibot";
import { bytesSchema, intIn, timeMsSchema } from "../net/bounds.ts";

/**
 * Files are identified by content: a SHA-256 of the whole file, and one per fixed-size piece so a
 * transfer can verify (and draw from several sources) piece by piece before the whole is checked.
 */
export const PIECE_BYTES = 4 * 1024 * 1024;
/** Bounds on what a peer may claim: files per manifest, a piece's size, pieces per file (16 TiB at 4 MiB). */
const MAX_FILES = 1_000_000;
export const MAX_PIECE_BYTES = 256 * 1024 * 1024;
export const MAX_PIECES = 4 * 1024 * 1024;

const sha256Hex = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, "a SHA-256 as 64 lowercase hex digits"));
export const sha256Schema = sha256Hex;

/** One file of a category as its holder indexed it. `path` is relative to the category root, with "/". */
export const fileEntrySchema = v.object({
  path: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)),
  size: bytesSchema,
  mtimeMs: timeMsSchema,
  sha256: sha256Hex,
});
export type FileEntry = v.InferOutput<typeof fileEntrySchema>;

export const MAX_RETIRED_RULES = 64;
export const MAX_RETIRED_EXCEPT = 256;

/** A retention rule of a category (src/sync/retired.ts): entries of folder `under` numbered below `below`. */
export const retiredSchema = v.strictObject({
  under: v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a run's folder")),
  below: intIn(0, 1_000_000_000),
  except: v.pipe(v.array(sha256Hex), v.maxLength(MAX_RETIRED_EXCEPT)),
});
export type Retired = v.InferOutput<typeof retiredSchema>;

/** A category's manifest on one node, with the retention rules it applies. */
export const manifestSchema = v.object({
  node: v.pipe(v.string(), v.maxLength(64)),
  category: v.pipe(v.string(), v.maxLength(32)),
  digest: v.pipe(v.string(), v.maxLength(64)),
  files: v.pipe(v.array(fileEntrySchema), v.maxLength(MAX_FILES)),
  retired: v.optional(v.pipe(v.array(retiredSchema), v.maxLength(MAX_RETIRED_RULES)), []),
});
export type Manifest = v.InferOutput<typeof manifestSchema>;

/** What gossip carries per category: enough to notice a change, not the list itself. */
export const manifestDigestSchema = v.object({
  digest: v.pipe(v.string(), v.maxLength(64)),
  files: intIn(0, MAX_FILES),
  bytes: bytesSchema,
});
export type ManifestDigest = v.InferOutput<typeof manifestDigestSchema>;

/** The piece hashes of one file, and which pieces the answering node holds (all, for a finished file). */
export const pieceMapSchema = v.object({
  sha256: sha256Hex,
  size: bytesSchema,
  pieceBytes: intIn(1, MAX_PIECE_BYTES),
  pieces: v.pipe(v.array(sha256Hex), v.maxLength(MAX_PIECES)),
  /** Indexes of the pieces the answering node can serve now; absent means every piece. */
  have: v.optional(v.pipe(v.array(intIn(0, MAX_PIECES - 1)), v.maxLength(MAX_PIECES))),
});
export type PieceMap = v.InferOutput<typeof pieceMapSchema>;

export function pieceCount(size: number, pieceBytes = PIECE_BYTES): number {
  return Math.max(1, Math.ceil(size / pieceBytes));
}

export const syncStartBodySchema = v.strictObject({
  /** Only this category (default: every category this node should hold). */
  category: v.optional(v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a category name"))),
});
