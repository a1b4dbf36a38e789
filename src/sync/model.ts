import * as v from "valibot";

/**
 * Files are identified by content: a SHA-256 of the whole file, and one per fixed-size piece so a
 * transfer can verify (and draw from several sources) piece by piece before the whole is checked.
 */
export const PIECE_BYTES = 4 * 1024 * 1024;

const sha256Hex = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, "a SHA-256 as 64 lowercase hex digits"));
export const sha256Schema = sha256Hex;

/** One file of a category as its holder indexed it. `path` is relative to the category root, with "/". */
export const fileEntrySchema = v.object({
  path: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)),
  size: v.pipe(v.number(), v.integer(), v.minValue(0)),
  mtimeMs: v.number(),
  sha256: sha256Hex,
});
export type FileEntry = v.InferOutput<typeof fileEntrySchema>;

/** A category's manifest on one node. */
export const manifestSchema = v.object({
  node: v.pipe(v.string(), v.maxLength(64)),
  category: v.pipe(v.string(), v.maxLength(32)),
  digest: v.pipe(v.string(), v.maxLength(64)),
  files: v.pipe(v.array(fileEntrySchema), v.maxLength(1_000_000)),
});
export type Manifest = v.InferOutput<typeof manifestSchema>;

/** What gossip carries per category: enough to notice a change, not the list itself. */
export const manifestDigestSchema = v.object({
  digest: v.pipe(v.string(), v.maxLength(64)),
  files: v.number(),
  bytes: v.number(),
});
export type ManifestDigest = v.InferOutput<typeof manifestDigestSchema>;

/** The piece hashes of one file, and which pieces the answering node holds (all, for a finished file). */
export const pieceMapSchema = v.object({
  sha256: sha256Hex,
  size: v.pipe(v.number(), v.integer(), v.minValue(0)),
  pieceBytes: v.pipe(v.number(), v.integer(), v.minValue(1)),
  pieces: v.array(sha256Hex),
  /** Indexes of the pieces the answering node can serve now; absent means every piece. */
  have: v.optional(v.array(v.number())),
});
export type PieceMap = v.InferOutput<typeof pieceMapSchema>;

export function pieceCount(size: number, pieceBytes = PIECE_BYTES): number {
  return Math.max(1, Math.ceil(size / pieceBytes));
}

export const syncStartBodySchema = v.strictObject({
  /** Only this category (default: every category this node should hold). */
  category: v.optional(v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a category name"))),
});
