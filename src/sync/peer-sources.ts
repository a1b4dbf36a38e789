import * as v from "valibot";
import { CallError, type PeerTransport } from "../net/peer-transport.ts";
import { ROUTES } from "../net/route-table.ts";
import { type PieceSource, SourceBusy } from "./fetcher.ts";
import { type PieceMap, pieceMapSchema } from "./model.ts";
import type { RateLimiter } from "./throttle.ts";

/** How long to leave a busy peer alone (its 503 says Retry-After: 1). */
const BUSY_RETRY_MS = 1_000;

/** A peer that holds a file (finished) or part of it (a swarm member still fetching). */
export interface Holder {
  id: string;
  address: string;
  /** True when the holder has the whole file; false when it is fetching it and serves what it has. */
  complete: boolean;
}

export interface PeerSourceOptions {
  transport: PeerTransport;
  /** Deadline for one piece request (a piece is PIECE_BYTES). */
  pieceTimeoutMs: number;
  download: RateLimiter;
  /** Counts bytes received, for metrics and session progress. */
  onBytes?: (bytes: number) => void;
}

/** Asks one holder for the piece hashes of a file (and which pieces it has). */
export async function fetchPieceMap(
  holder: Holder,
  sha256: string,
  opts: Pick<PeerSourceOptions, "transport" | "pieceTimeoutMs">,
): Promise<PieceMap> {
  const body = await opts.transport.request(holder, ROUTES.peerFilePieces, {
    params: { sha256 },
    timeoutMs: opts.pieceTimeoutMs,
  });
  const parsed = v.safeParse(pieceMapSchema, body);
  if (!parsed.success) throw new Error(`${holder.id}: piece map for ${sha256.slice(0, 12)} is malformed`);
  if (parsed.output.sha256 !== sha256) throw new Error(`${holder.id}: piece map names another file`);
  return parsed.output;
}

/**
 * A holder as a source of byte ranges, over signed Range requests through the peer transport. A partial holder's set of
 * pieces is refreshed in the background while the transfer runs, so new pieces become usable.
 */
export class PeerSource implements PieceSource {
  readonly id: string;
  private held: Set<number> | null;
  private refresher: ReturnType<typeof setInterval> | null = null;
  private polling = false;

  constructor(
    private readonly holder: Holder,
    private readonly sha256: string,
    private readonly opts: PeerSourceOptions,
    initialHave?: readonly number[],
  ) {
    this.id = holder.id;
    this.held = holder.complete ? null : new Set(initialHave ?? []);
  }

  get complete(): boolean {
    return this.held === null;
  }

  has(piece: number): boolean {
    return this.held === null || this.held.has(piece);
  }

  /** Polls a partial holder's piece list every `everyMs` until `stop()`. */
  follow(everyMs: number): void {
    if (this.held === null || this.refresher) return;
    this.refresher = setInterval(() => {
      if (this.polling) return;
      this.polling = true;
      fetchPieceMap(this.holder, this.sha256, { ...this.opts, pieceTimeoutMs: everyMs * 4 })
        .then((map) => {
          this.held = map.have === undefined ? null : new Set(map.have);
          if (this.held === null) this.stop();
        })
        .catch(() => {})
        .finally(() => {
          this.polling = false;
        });
    }, everyMs);
  }

  stop(): void {
    if (this.refresher) clearInterval(this.refresher);
    this.refresher = null;
  }

  async fetchRange(start: number, endExclusive: number, signal: AbortSignal, into: Uint8Array): Promise<Uint8Array> {
    const want = endExclusive - start;
    if (into.byteLength < want) throw new Error(`a ${into.byteLength}-byte buffer cannot take ${want} bytes`);
    let response: Response;
    try {
      response = await this.opts.transport.stream(this.holder, ROUTES.peerFile, {
        params: { sha256: this.sha256 },
        headers: { range: `bytes=${start}-${endExclusive - 1}` },
        timeoutMs: this.opts.pieceTimeoutMs,
        signal,
      });
    } catch (e) {
      // 503: its upload slots are full; 409/404: a swarm peer does not have this piece (or the file) yet.
      if (e instanceof CallError && e.status === 503) throw new SourceBusy(e.message, BUSY_RETRY_MS);
      if (e instanceof CallError && (e.status === 409 || e.status === 404) && !this.complete) {
        throw new SourceBusy(e.message, BUSY_RETRY_MS / 4);
      }
      throw e;
    }
    const limited = !this.opts.download.unlimited;
    let at = 0;
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (at + value.byteLength > want) throw new Error(`${this.id}: sent more than the ${want} bytes asked for`);
        if (limited) await this.opts.download.take(value.byteLength, signal);
        into.set(value, at);
        at += value.byteLength;
        if (limited) this.opts.onBytes?.(value.byteLength);
      }
    } catch (e) {
      await reader.cancel().catch(() => {});
      throw e;
    } finally {
      reader.releaseLock();
    }
    if (at !== want) throw new Error(`${this.id}: sent ${at} of ${want} bytes`);
    if (!limited) this.opts.onBytes?.(want);
    return into.subarray(0, want);
  }
}
