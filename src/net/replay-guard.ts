/**
 * Refuses a signed request seen before. A nonce is a stream id (16 hex digits, random, one per sender
 * and destination) and a counter (16 hex digits) that the sender increments per request. For each
 * (node, stream) the guard keeps the highest counter and a bitmap of the `reorder` counters below it,
 * as IPsec's anti-replay window does: memory grows with the number of senders, not with the request
 * rate, so no rate of honest traffic can fill it.
 */

export type ReplayOutcome = "fresh" | "replayed" | "too-old" | "full" | "bad-counter";

interface Stream {
  highest: number;
  /** Bit (counter mod reorder) is set once that counter has been accepted. */
  seen: Uint32Array;
  /** The newest timestamp accepted on this stream: once it is older than the window, so is every request. */
  newestTs: number;
}

export class ReplayGuard {
  private readonly streams = new Map<string, Stream>();
  private nextSweep = 0;

  /**
   * @param windowMs how long a stream is remembered after its newest request's timestamp; at least the
   *   accepted clock skew, after which the timestamp check refuses anything the stream carried.
   * @param maxStreams bound on senders remembered at once; past it, new streams are refused.
   * @param reorder how far behind the highest counter a request may arrive (a multiple of 32).
   */
  constructor(private readonly opts: { windowMs: number; maxStreams: number; reorder: number }) {
    if (!(opts.windowMs > 0) || !(opts.maxStreams >= 1)) throw new Error("windowMs and maxStreams must be positive");
    if (!(opts.reorder >= 32) || opts.reorder % 32 !== 0) throw new Error("reorder must be a positive multiple of 32");
  }

  get size(): number {
    return this.streams.size;
  }

  /**
   * What `record` would answer, without recording: the gate asks before it reads a body, and records only
   * once the signature over that body checks out, so a forgery cannot burn an honest sender's nonce.
   */
  peek(nodeId: string, nonce: string, now: number): ReplayOutcome {
    this.sweep(now);
    const counter = Number.parseInt(nonce.slice(16), 16);
    if (!Number.isSafeInteger(counter)) return "bad-counter";
    const stream = this.streams.get(`${nodeId}\n${nonce.slice(0, 16)}`);
    if (!stream) return this.streams.size >= this.opts.maxStreams ? "full" : "fresh";
    if (counter > stream.highest) return "fresh";
    if (stream.highest - counter >= this.opts.reorder) return "too-old";
    return this.has(stream, counter) ? "replayed" : "fresh";
  }

  /** Accepts `nonce` (32 lowercase hex digits) once per node; says why not otherwise. */
  record(nodeId: string, nonce: string, ts: number, now: number): ReplayOutcome {
    const outcome = this.peek(nodeId, nonce, now);
    if (outcome !== "fresh") return outcome;
    const counter = Number.parseInt(nonce.slice(16), 16);
    const key = `${nodeId}\n${nonce.slice(0, 16)}`;
    let stream = this.streams.get(key);
    if (!stream) {
      stream = { highest: counter, seen: new Uint32Array(this.opts.reorder / 32), newestTs: ts };
      this.streams.set(key, stream);
    } else if (counter > stream.highest) {
      // Counters skipped over become slots in the window that may still arrive, so their bits are cleared.
      const skipped = Math.min(counter - stream.highest, this.opts.reorder);
      for (let c = counter - skipped + 1; c <= counter; c++) this.flip(stream, c, false);
      stream.highest = counter;
    }
    this.flip(stream, counter, true);
    if (ts > stream.newestTs) stream.newestTs = ts;
    return "fresh";
  }

  private has(stream: Stream, counter: number): boolean {
    const bit = counter % this.opts.reorder;
    return ((stream.seen[bit >>> 5] as number) & (1 << (bit & 31))) !== 0;
  }

  private flip(stream: Stream, counter: number, on: boolean): void {
    const bit = counter % this.opts.reorder;
    const word = stream.seen[bit >>> 5] as number;
    stream.seen[bit >>> 5] = on ? word | (1 << (bit & 31)) : word & ~(1 << (bit & 31));
  }

  /** At most once a second: forgets streams whose every request the timestamp check now refuses. */
  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + 1_000;
    for (const [key, stream] of this.streams) {
      if (stream.newestTs + this.opts.windowMs < now) this.streams.delete(key);
    }
  }
}
