/** Servable pieces weighed per choice: rarest-first among the next few, so a huge file costs no more per piece. */
const RARITY_WINDOW = 512;

/** A source as the scheduler weighs it. */
export interface SourceStanding {
  source: { id: string; has?: (piece: number) => boolean };
  /** Its place in the list the transfer was given (the tie-break). */
  order: number;
  inFlight: number;
  failures: number;
  /** Benched after a failure until then. */
  notBefore: number;
}

export interface PieceChoiceInput<S extends SourceStanding> {
  /** The pieces still wanted, in the order to take them (file order from the transfer's starting point). */
  missing: ReadonlySet<number>;
  inFlight: { has(piece: number): boolean };
  sources: readonly S[];
  /** The sources a piece already failed from. */
  tried: (piece: number) => ReadonlySet<string> | undefined;
  perSource: number;
  now: number;
}

const holds = (s: SourceStanding, piece: number) => s.source.has?.(piece) ?? true;

/**
 * The next piece to ask for and from whom: the rarest among the next few servable pieces (the first of them
 * in order), from the source that holds it and has room now, preferring one it has not failed from, then the
 * least busy, the most reliable, the earliest listed. Null when no source can take a piece now.
 */
export function choosePiece<S extends SourceStanding>(i: PieceChoiceInput<S>): { piece: number; source: S } | null {
  let best: { piece: number; source: S; holders: number } | null = null;
  let looked = 0;
  for (const piece of i.missing) {
    if (i.inFlight.has(piece)) continue;
    if (looked >= RARITY_WINDOW || best?.holders === 1) break;
    const tried = i.tried(piece);
    const failedHere = (s: S) => (tried?.has(s.source.id) ? 1 : 0);
    let holders = 0;
    let pick: S | null = null;
    for (const s of i.sources) {
      if (!holds(s, piece)) continue;
      holders++;
      if (s.notBefore > i.now || s.inFlight >= i.perSource) continue;
      const better =
        pick === null ||
        (failedHere(s) - failedHere(pick) ||
          s.inFlight - pick.inFlight ||
          s.failures - pick.failures ||
          s.order - pick.order) < 0;
      if (better) pick = s;
    }
    if (!pick) continue;
    looked++;
    if (!best || holders < best.holders) best = { piece, source: pick, holders };
  }
  return best;
}

/** When a benched source that holds a piece still wanted comes back, if any does. */
export function nextReturn(i: Omit<PieceChoiceInput<SourceStanding>, "tried" | "perSource">): number | null {
  let at: number | null = null;
  for (const s of i.sources) {
    if (s.notBefore <= i.now || (at !== null && s.notBefore >= at)) continue;
    for (const piece of i.missing)
      if (!i.inFlight.has(piece) && holds(s, piece)) {
        at = s.notBefore;
        break;
      }
  }
  return at;
}
