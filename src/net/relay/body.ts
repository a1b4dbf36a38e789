/** How a node behind NAT holds an answer's body between its router and the relay lane. */

export interface PooledBody {
  bytes: Uint8Array;
  /** Hands the buffer back for the next answer (a WebSocket send copies what it is given). */
  release: () => void;
}

/**
 * Answers' bodies are gathered in a few kept buffers. A fresh one per answer (`response.arrayBuffer()`: 4 MiB for
 * each piece of a file, page-faulted in, then collected) cost the node about a fifth more CPU per relayed byte and
 * more frequent collections (pauses of 5-35 ms during a transfer), which a heartbeat on the control lane waits out.
 */
const POOL_BUFFER_BYTES = 4 * 1024 * 1024;
const POOL_BUFFERS = 4;

export class BodyPool {
  private readonly free: Uint8Array[] = [];

  /** A buffer of at least `bytes`, one of these when it fits (else twice what it replaces). */
  take(bytes: number, replacing: number): Uint8Array {
    if (bytes > POOL_BUFFER_BYTES) return new Uint8Array(Math.max(bytes, 2 * replacing));
    return this.free.pop() ?? new Uint8Array(POOL_BUFFER_BYTES);
  }

  release(buffer: Uint8Array): void {
    if (buffer.byteLength === POOL_BUFFER_BYTES && this.free.length < POOL_BUFFERS) this.free.push(buffer);
  }
}

/**
 * The response's body: one chunk as it is, more gathered in a pooled buffer (a larger one when they do not fit),
 * or null past `maxBytes` (the rest is not read).
 */
export async function readBody(response: Response, pool: BodyPool, maxBytes: number): Promise<PooledBody | null> {
  const reader = response.body?.getReader();
  let gathered: Uint8Array = new Uint8Array(0);
  let pooled = false;
  let length = 0;
  for (;;) {
    const chunk = await reader?.read();
    if (!chunk || chunk.done) break;
    const need = length + chunk.value.byteLength;
    if (need > maxBytes) {
      await reader?.cancel("larger than a relay carries").catch(() => {});
      if (pooled) pool.release(gathered);
      return null;
    }
    if (length === 0) {
      gathered = chunk.value;
    } else {
      if (!pooled || need > gathered.byteLength) {
        const larger = pool.take(need, gathered.byteLength);
        larger.set(gathered.subarray(0, length));
        if (pooled) pool.release(gathered);
        gathered = larger;
        pooled = true;
      }
      gathered.set(chunk.value, length);
    }
    length = need;
  }
  const held = gathered;
  return { bytes: held.subarray(0, length), release: pooled ? () => pool.release(held) : () => {} };
}
