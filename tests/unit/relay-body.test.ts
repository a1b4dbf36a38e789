import { describe, expect, test } from "bun:test";
import { BodyPool, readBody } from "../../src/net/relay/body.ts";

const MiB = 1024 * 1024;

/** A response whose body arrives in these chunks; `cancelled` says whether the reader gave up on it. */
function chunked(chunks: Uint8Array[]): { response: Response; cancelled: () => boolean } {
  let cancelled = false;
  let next = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[next++];
      if (chunk) controller.enqueue(chunk);
      else controller.close();
    },
    cancel() {
      cancelled = true;
    },
  });
  return { response: new Response(body), cancelled: () => cancelled };
}

function filled(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 7 + seed) & 0xff;
  return out;
}

describe("an answer's body on its way to the relay lane", () => {
  test("several chunks are gathered in order, in a buffer the next answer reuses once this one is sent", async () => {
    const pool = new BodyPool();
    const chunks = [filled(256 * 1024, 1), filled(512 * 1024, 2), filled(3, 3)];
    const first = await readBody(chunked(chunks).response, pool, 4 * MiB);
    expect(first?.bytes).toEqual(Uint8Array.from(chunks.flatMap((c) => [...c])));
    const buffer = first?.bytes.buffer;
    first?.release();
    const second = await readBody(chunked([filled(10, 4), filled(20, 5)]).response, pool, 4 * MiB);
    expect(second?.bytes.buffer).toBe(buffer as ArrayBufferLike);
    expect(second?.bytes).toEqual(Uint8Array.from([...filled(10, 4), ...filled(20, 5)]));
    // Not released yet: a third answer at the same time gets a buffer of its own.
    const third = await readBody(chunked([filled(10, 6), filled(10, 7)]).response, pool, 4 * MiB);
    expect(third?.bytes.buffer).not.toBe(buffer as ArrayBufferLike);
  });

  test("a body of one chunk is sent as it came, without a copy; no body is empty", async () => {
    const chunk = filled(1000, 8);
    const read = await readBody(chunked([chunk]).response, new BodyPool(), 4 * MiB);
    expect(read?.bytes.buffer).toBe(chunk.buffer);
    expect(read?.bytes.byteLength).toBe(1000);
    expect((await readBody(new Response(null), new BodyPool(), 4 * MiB))?.bytes.byteLength).toBe(0);
  });

  test("a body larger than a pooled buffer is gathered whole", async () => {
    const chunks = [filled(3 * MiB, 1), filled(3 * MiB, 2), filled(1, 3)];
    const read = await readBody(chunked(chunks).response, new BodyPool(), 16 * MiB);
    expect(read?.bytes.byteLength).toBe(6 * MiB + 1);
    expect(read?.bytes.subarray(3 * MiB, 3 * MiB + 8)).toEqual(chunks[1]?.subarray(0, 8) as Uint8Array);
    expect(read?.bytes[6 * MiB]).toBe(chunks[2]?.[0] as number);
  });

  test("past the limit: refused, and the rest of the body is not read", async () => {
    const body = chunked([filled(600, 1), filled(600, 2), filled(600, 3)]);
    expect(await readBody(body.response, new BodyPool(), 1000)).toBeNull();
    expect(body.cancelled()).toBe(true);
  });
});
