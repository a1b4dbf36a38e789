/**
 * The whole-file SHA-256, computed from the verified pieces as they land, so a transfer whose pieces
 * arrive (nearly) in order needs no second read of the file. Out-of-order pieces wait in a bounded
 * buffer; past it, or after a resume (pieces on disk were never seen here), it gives up and the file
 * is hashed from disk instead.
 */
export class InOrderHash {
  private readonly hasher = new Bun.CryptoHasher("sha256");
  private readonly pending = new Map<number, Uint8Array>();
  private next = 0;
  private broken = false;

  constructor(
    private readonly pieces: number,
    private readonly maxPending = 16,
  ) {}

  add(index: number, bytes: Uint8Array): void {
    if (this.broken || index < this.next || this.pending.has(index)) return;
    if (index !== this.next) {
      if (this.pending.size >= this.maxPending) this.giveUp();
      else this.pending.set(index, bytes);
      return;
    }
    this.hasher.update(bytes);
    this.next++;
    for (let queued = this.pending.get(this.next); queued; queued = this.pending.get(this.next)) {
      this.pending.delete(this.next);
      this.hasher.update(queued);
      this.next++;
    }
  }

  giveUp(): void {
    this.broken = true;
    this.pending.clear();
  }

  /** The file's SHA-256 once every piece went through in order; null when the file must be hashed from disk. */
  digest(): string | null {
    if (this.broken || this.next !== this.pieces) return null;
    this.broken = true;
    return this.hasher.digest("hex");
  }
}
