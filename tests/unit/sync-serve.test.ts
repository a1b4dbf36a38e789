import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkDisk, diskGate } from "../../src/sync/disk-gate.ts";
import { type ServedFile, type ServeOptions, serveFileRange } from "../../src/sync/file-server.ts";
import { resolveInRoot } from "../../src/sync/paths.ts";
import { type Clock, RATE_CHUNK_BYTES, RateLimiter, Slots } from "../../src/sync/throttle.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

let dir: string;

beforeAll(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), "p2p-sync-serve-")));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Polls `condition` until it holds, failing with `what` once `deadlineMs` has passed. */
async function waitUntil(condition: () => boolean, what: string, deadlineMs = 5_000): Promise<void> {
  const deadline = performance.now() + deadlineMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting until ${what}`);
    await Bun.sleep(2);
  }
}

function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(n);
  for (let at = 0; at < n; at += 65_536) crypto.getRandomValues(bytes.subarray(at, at + 65_536));
  return bytes;
}

describe("resolveInRoot", () => {
  let root: string;
  let outside: string;

  beforeAll(() => {
    root = join(dir, "root");
    outside = join(dir, "outside");
    mkdirSync(join(root, "a", "b"), { recursive: true });
    mkdirSync(join(root, "good"));
    mkdirSync(outside);
    writeFileSync(join(root, "a", "b", "file.txt"), "inside");
    writeFileSync(join(outside, "secret.txt"), "outside");
    symlinkSync(join(outside, "secret.txt"), join(root, "link-out"));
    symlinkSync(outside, join(root, "dir-out"));
    symlinkSync(join(outside, "nothing-yet"), join(root, "dangling"));
    symlinkSync(join(root, "a", "b", "file.txt"), join(root, "link-in"));
  });

  const refused: Array<[string, string]> = [
    ["../x", '".."'],
    ["a/../../x", '".."'],
    ["/etc/passwd", "absolute"],
    ["C:\\x", "Windows drive"],
    ["C:/x", "Windows drive"],
    ["\\\\server\\share\\x", "UNC"],
    ["a\\..\\b", "backslash"],
    ["a\0b", "NUL"],
    ["", "empty"],
    [".", "data root itself"],
    ["link-out", "outside the data root"],
    ["dir-out/secret.txt", "outside the data root"],
    ["dir-out/new.txt", "outside the data root"],
    ["dangling", "symlink"],
    ["a/b/file.txt/below", "ENOTDIR"],
  ];
  for (const [relative, why] of refused) {
    test(`refuses ${JSON.stringify(relative)} (${why})`, async () => {
      const result = await resolveInRoot(root, relative);
      if (result.ok) throw new Error(`accepted ${JSON.stringify(relative)} as ${result.path}`);
      expect(result.reason).toContain(why);
      if (relative !== "") expect(result.reason).toContain(JSON.stringify(relative));
    });
  }

  test("accepts a nested existing file, with its real path", async () => {
    expect(await resolveInRoot(root, "a/b/file.txt")).toEqual({ ok: true, path: join(root, "a", "b", "file.txt") });
  });

  test("accepts a symlink that stays inside the root, resolved to its target", async () => {
    expect(await resolveInRoot(root, "link-in")).toEqual({ ok: true, path: join(root, "a", "b", "file.txt") });
  });

  test("accepts a file not written yet, under an existing or a missing folder", async () => {
    expect(await resolveInRoot(root, "good/new.bin")).toEqual({ ok: true, path: join(root, "good", "new.bin") });
    expect(await resolveInRoot(root, "good/later/new.bin")).toEqual({
      ok: true,
      path: join(root, "good", "later", "new.bin"),
    });
  });

  test("refuses everything when the root itself is missing", async () => {
    const result = await resolveInRoot(join(dir, "no-such-root"), "x");
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain("no-such-root");
  });
});

describe("checkDisk", () => {
  const disk = { totalBytes: 100 * GiB, freeBytes: 20 * GiB, maxPercent: 90 };

  test("allows a transfer that stays within the limit, up to exactly the limit", () => {
    expect(checkDisk({ ...disk, incomingBytes: 5 * GiB })).toEqual({ ok: true });
    expect(checkDisk({ ...disk, incomingBytes: 10 * GiB })).toEqual({ ok: true });
  });

  test("refuses one that would pass the limit, saying how full and what the limit is", () => {
    const verdict = checkDisk({ ...disk, incomingBytes: 15 * GiB });
    expect(verdict).toEqual({
      ok: false,
      reason: "receiving 15.0 GiB would fill the disk to 95.0%, past the 90% limit (20.0 GiB free of 100.0 GiB)",
    });
  });

  test("refuses one that does not fit at all, even with no percentage limit", () => {
    const verdict = checkDisk({ ...disk, maxPercent: 100, incomingBytes: 21 * GiB });
    expect(verdict).toEqual({ ok: false, reason: "21.0 GiB does not fit: only 20.0 GiB is free" });
  });

  test("diskGate reads the disk of the nearest existing folder", async () => {
    const notYet = join(dir, "not", "yet", "made");
    expect(await diskGate(notYet, 0, 100)).toEqual({ ok: true });
    const verdict = await diskGate(notYet, Number.MAX_SAFE_INTEGER, 100);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toStartWith(`${notYet}: `);
  });
});

/**
 * Time that passes only while the limiter sleeps, so every schedule is exact and instant. The clock moves when
 * the sleep ends, after whatever the limiter resolved before sleeping has seen the time it was resolved at.
 */
class SteppingClock implements Clock {
  t = 0;
  now(): number {
    return this.t;
  }
  sleep(ms: number): Promise<void> {
    const until = this.t + ms;
    return Promise.resolve().then(() => {
      this.t = Math.max(this.t, until);
    });
  }
}

describe("RateLimiter", () => {
  const rate = MiB; // bytes per second: burst is a quarter of it, 256 KiB

  test("sizes its burst to a quarter second, never below one chunk", () => {
    expect(new RateLimiter(rate).burstBytes).toBe(256 * KiB);
    expect(new RateLimiter(1_000).burstBytes).toBe(RATE_CHUNK_BYTES);
    expect(() => new RateLimiter(-1)).toThrow(RangeError);
  });

  test("holds the rate over a window, in arrival order", async () => {
    const clock = new SteppingClock();
    const limiter = new RateLimiter(rate, { clock });
    const done: Array<{ index: number; at: number }> = [];
    await Promise.all(
      Array.from({ length: 40 }, (_, index) =>
        limiter.take(64 * KiB).then(() => done.push({ index, at: clock.now() })),
      ),
    );
    expect(done.map((d) => d.index)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    for (const [i, d] of done.entries()) {
      // Never ahead of the bucket: the burst plus what the rate earned by then.
      expect((i + 1) * 64 * KiB).toBeLessThanOrEqual(limiter.burstBytes + (rate * d.at) / 1000);
    }
    const ideal = ((40 * 64 * KiB - limiter.burstBytes) / rate) * 1000; // 2250 ms
    expect(done.at(-1)?.at).toBeGreaterThanOrEqual(ideal);
    expect(done.at(-1)?.at).toBeLessThan(ideal + 40); // timers round each wait up to a whole millisecond
  });

  test("a small request waits behind a large one that came first", async () => {
    const clock = new SteppingClock();
    const limiter = new RateLimiter(rate, { clock });
    const order: string[] = [];
    const large = limiter.take(MiB).then(() => order.push("large"));
    const small = limiter.take(KiB).then(() => order.push("small"));
    expect(limiter.waiting).toBe(2);
    await Promise.all([large, small]);
    expect(order).toEqual(["large", "small"]);
    expect(clock.now()).toBeGreaterThanOrEqual(((MiB + KiB - limiter.burstBytes) / rate) * 1000);
  });

  test("an aborted waiter rejects with the signal's reason and gives its place to the next", async () => {
    const clock = new SteppingClock();
    const limiter = new RateLimiter(rate, { clock });
    await limiter.take(limiter.burstBytes); // empty the bucket
    const times: Record<string, number> = {};
    const first = limiter.take(256 * KiB).then(() => {
      times.first = clock.now();
    });
    const abort = new AbortController();
    const aborted = limiter.take(512 * KiB, abort.signal);
    const last = limiter.take(64 * KiB).then(() => {
      times.last = clock.now();
    });
    abort.abort(new Error("client went away"));
    await expect(aborted).rejects.toThrow("client went away");
    await Promise.all([first, last]);
    expect(times.first).toBe(250);
    // Had the aborted waiter kept its place, the last would have waited another 500 ms.
    expect(times.last).toBeLessThanOrEqual(250 + 63);
    expect(limiter.waiting).toBe(0);
    await expect(limiter.take(1, abort.signal)).rejects.toThrow("client went away");
  });

  test("refuses to queue past its waiter limit", async () => {
    const limiter = new RateLimiter(rate, { clock: new SteppingClock(), maxWaiters: 1 });
    await limiter.take(limiter.burstBytes);
    const queued = limiter.take(KiB);
    await expect(limiter.take(KiB)).rejects.toThrow("limit");
    await queued;
  });

  test("unlimited is immediate and keeps no account", async () => {
    const limiter = new RateLimiter(0);
    expect(limiter.unlimited).toBe(true);
    await limiter.take(1e15);
    await limiter.take(1e15);
    expect(limiter.waiting).toBe(0);
  });

  test("with the real clock, a burst's worth passes at once and more waits", async () => {
    const limiter = new RateLimiter(4 * MiB);
    const started = performance.now();
    await limiter.take(limiter.burstBytes);
    await limiter.take(MiB);
    expect(performance.now() - started).toBeGreaterThanOrEqual(240);
  });
});

describe("Slots", () => {
  test("counts up to its limit and back", () => {
    const slots = new Slots(2);
    expect(slots.limit).toBe(2);
    expect(slots.tryAcquire()).toBe(true);
    expect(slots.tryAcquire()).toBe(true);
    expect(slots.tryAcquire()).toBe(false);
    expect(slots.inUse).toBe(2);
    slots.release();
    expect(slots.tryAcquire()).toBe(true);
    slots.release();
    slots.release();
    expect(slots.inUse).toBe(0);
    expect(() => slots.release()).toThrow("not held");
    expect(() => new Slots(0)).toThrow(RangeError);
  });
});

describe("serveFileRange over HTTP", () => {
  const PIECE = 1024;
  const SIZE = 10 * PIECE + 100; // 11 pieces, the last one short
  let content: Uint8Array<ArrayBuffer>;
  let big: Uint8Array<ArrayBuffer>;
  let small: ServedFile;
  let large: ServedFile;
  let server: ReturnType<typeof Bun.serve>;
  let route: { target: ServedFile | null; opts: ServeOptions };

  beforeAll(() => {
    content = randomBytes(SIZE);
    big = randomBytes(16 * MiB);
    writeFileSync(join(dir, "small.bin"), content);
    writeFileSync(join(dir, "big.bin"), big);
    small = { absPath: join(dir, "small.bin"), size: SIZE, sha256: "a".repeat(64) };
    large = { absPath: join(dir, "big.bin"), size: big.byteLength, sha256: "b".repeat(64) };
    route = { target: small, opts: options() };
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request) => serveFileRange(request, route.target, route.opts),
    });
  });
  afterAll(() => {
    server.stop(true);
  });

  function options(overrides: Partial<ServeOptions> = {}): ServeOptions {
    return { uploads: new Slots(2), rate: new RateLimiter(0), pieceBytes: PIECE, ...overrides };
  }

  function get(range?: string, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = range ? { range } : {};
    return fetch(`http://127.0.0.1:${server.port}/peer/files/x`, { headers, signal });
  }

  async function expectSlotsFreed(opts: ServeOptions): Promise<void> {
    await waitUntil(() => opts.uploads.inUse === 0, "every upload slot is released");
  }

  test("without a Range, the whole file with 200", async () => {
    route = { target: small, opts: options() };
    const res = await get();
    expect(res.status).toBe(200);
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(content);
    await expectSlotsFreed(route.opts);
  });

  const ranges: Array<[string, number, number]> = [
    ["bytes=0-99", 0, 99],
    ["bytes=1000-1099", 1000, 1099],
    ["bytes=10000-", 10000, SIZE - 1],
    ["bytes=-100", SIZE - 100, SIZE - 1],
    ["bytes=5000-999999", 5000, SIZE - 1],
    ["bytes=-999999", 0, SIZE - 1],
    ["BYTES=7-7", 7, 7],
  ];
  for (const [range, first, last] of ranges) {
    test(`${range} gives 206 with bytes ${first}-${last}`, async () => {
      route = { target: small, opts: options() };
      const res = await get(range);
      expect(res.status).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes ${first}-${last}/${SIZE}`);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(content.slice(first, last + 1));
      await expectSlotsFreed(route.opts);
    });
  }

  for (const range of [`bytes=${SIZE}-`, "bytes=0-1,5-6", "bytes=abc", "bytes=9-3", "bytes=-0", "items=0-1"]) {
    test(`${range} gives 416 with the size`, async () => {
      route = { target: small, opts: options() };
      const res = await get(range);
      expect(res.status).toBe(416);
      expect(res.headers.get("content-range")).toBe(`bytes */${SIZE}`);
      const body = (await res.json()) as { error: string; message: string };
      expect(body.error).toBe("range_not_satisfiable");
      expect(body.message).toContain(JSON.stringify(range));
      expect(route.opts.uploads.inUse).toBe(0);
    });
  }

  test("a file not served here gives 404", async () => {
    route = { target: null, opts: options() };
    const res = await get();
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe("not_found");
  });

  test("an empty file gives an empty 200", async () => {
    writeFileSync(join(dir, "empty.bin"), "");
    route = { target: { absPath: join(dir, "empty.bin"), size: 0, sha256: "c".repeat(64) }, opts: options() };
    const res = await get();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("0");
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  test("a partial file serves the pieces it holds and answers 409 for the others", async () => {
    route = { target: { ...small, held: (piece) => piece < 3 }, opts: options() };
    const ok = await get(`bytes=0-${3 * PIECE - 1}`);
    expect(ok.status).toBe(206);
    expect(new Uint8Array(await ok.arrayBuffer())).toEqual(content.slice(0, 3 * PIECE));

    const res = await get(`bytes=${3 * PIECE - 10}-${3 * PIECE + 10}`);
    expect(res.status).toBe(409);
    const body = (await res.json()) as { error: string; message: string; piece: number };
    expect(body.error).toBe("piece_missing");
    expect(body.piece).toBe(3);
    expect(body.message).toContain(`piece 3 (bytes ${3 * PIECE}-${4 * PIECE - 1})`);
    await expectSlotsFreed(route.opts);
  });

  test("with waitFor, a request for a piece on its way waits for it", async () => {
    const held = new Set([0, 1, 2]);
    const asked: number[] = [];
    let arrive: (ok: boolean) => void = () => {};
    route = {
      target: {
        ...small,
        held: (piece) => held.has(piece),
        waitFor: (piece) => {
          asked.push(piece);
          return new Promise((resolve) => {
            arrive = resolve;
          });
        },
      },
      opts: options(),
    };
    const pending = get(`bytes=${2 * PIECE}-${4 * PIECE - 1}`);
    await waitUntil(() => asked.length === 1, "the server waits for piece 3");
    expect(asked).toEqual([3]);
    expect(route.opts.uploads.inUse).toBe(1);
    held.add(3);
    arrive(true);
    const res = await pending;
    expect(res.status).toBe(206);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(content.slice(2 * PIECE, 4 * PIECE));
    await expectSlotsFreed(route.opts);
  });

  test("with waitFor, a piece that does not come in time gives 409 and frees the slot", async () => {
    route = {
      target: {
        ...small,
        held: (piece) => piece === 0,
        waitFor: (_piece, signal) =>
          new Promise((resolve) => signal.addEventListener("abort", () => resolve(false), { once: true })),
      },
      opts: options({ waitMs: 50 }),
    };
    const res = await get(`bytes=0-${2 * PIECE - 1}`);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { message: string }).message).toContain("piece 1 ");
    await expectSlotsFreed(route.opts);
  });

  test("when every upload slot is taken, 503 with Retry-After", async () => {
    route = { target: small, opts: options({ uploads: new Slots(1) }) };
    expect(route.opts.uploads.tryAcquire()).toBe(true);
    const res = await get();
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as { error: string }).error).toBe("busy");
    route.opts.uploads.release();
  });

  test("a transfer in progress holds its slot, so a second request is turned away", async () => {
    route = { target: large, opts: options({ uploads: new Slots(1), rate: new RateLimiter(MiB) }) };
    const abort = new AbortController();
    const first = await get(undefined, abort.signal);
    expect(first.status).toBe(200);
    const second = await get();
    expect(second.status).toBe(503);
    await second.body?.cancel();
    abort.abort();
    await expectSlotsFreed(route.opts);
  });

  test("a rate-limited download arrives whole, no faster than the rate allows", async () => {
    const rate = new RateLimiter(8 * MiB);
    route = { target: large, opts: options({ rate }) };
    const started = performance.now();
    const res = await get(`bytes=0-${2 * MiB - 1}`);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(big.slice(0, 2 * MiB));
    expect(performance.now() - started).toBeGreaterThanOrEqual(
      ((2 * MiB - rate.burstBytes) / rate.bytesPerSecond) * 900,
    );
    await expectSlotsFreed(route.opts);
  });

  for (const [name, rate] of [
    ["rate-limited", MiB],
    ["unlimited", 0],
  ] as const) {
    test(`the slot is released when the client goes away mid-body (${name})`, async () => {
      route = { target: large, opts: options({ rate: new RateLimiter(rate) }) };
      const abort = new AbortController();
      const res = await get(undefined, abort.signal);
      const reader = res.body?.getReader();
      if (!reader) throw new Error("no body");
      const first = await reader.read();
      expect(first.done).toBe(false);
      if (rate > 0) expect(route.opts.uploads.inUse).toBe(1);
      abort.abort();
      await expectSlotsFreed(route.opts);
    });
  }

  test("a file that shrank under the server fails the transfer rather than ending it short", async () => {
    writeFileSync(join(dir, "shrinks.bin"), big.slice(0, MiB));
    route = { target: { ...large, absPath: join(dir, "shrinks.bin") }, opts: options() };
    const outcome = await get()
      .then((res) => res.arrayBuffer())
      .then(
        (body) => `complete with ${body.byteLength} bytes`,
        (e: unknown) => `failed: ${String(e)}`,
      );
    expect(outcome).toStartWith("failed");
    await expectSlotsFreed(route.opts);
  });
});
