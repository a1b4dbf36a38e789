import type { HashReply, HashRequest } from "./hash-worker.ts";

/** A request as the caller makes it (each kind without its id: the pool numbers it). */
type Request = HashRequest extends infer R ? (R extends HashRequest ? Omit<R, "id"> : never) : never;

export interface FileHash {
  sha256: string;
  pieces: string[];
  size: number;
}

export interface HasherOptions {
  /** Worker threads hashing in parallel; each hashes one file at a time. */
  workers?: number;
  /** Files waiting for a free worker past which `hashFile` refuses. */
  maxQueued?: number;
}

/**
 * Where the worker script is. In a `bun build --compile` binary (Bun.main under the embedded root) it is an
 * extra entrypoint of scripts/build.ts, found relative to that root: the common folder of the entrypoints, src/.
 * There `new URL(…, import.meta.url)` cannot be used: with --bytecode, import.meta.url is inlined as the build
 * machine's source path, so the worker would be loaded from that disk path, or not at all.
 */
function workerSpecifier(): string | URL {
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.replaceAll("\\", "/").startsWith("B:/~BUN/");
  return compiled ? "./sync/hash-worker.ts" : new URL("./hash-worker.ts", import.meta.url);
}

interface Job {
  id: number;
  request: Request;
  resolve: (reply: HashReply) => void;
  reject: (err: Error) => void;
}

interface Slot {
  /** Started on first use, and again after a crash: a worker that cannot start fails each job, not in a loop. */
  worker: Worker | null;
  job: Job | null;
  /** Whether the worker keeps the process alive: while it works, and a moment after (see IDLE_UNREF_MS). */
  refd: boolean;
  idleTimer: ReturnType<typeof setTimeout> | null;
}

/**
 * How long a worker stays ref'd after its last job. Ref and unref each cost milliseconds of cross-thread
 * work in Bun; toggling them per job (a piece every few ms while receiving) halved the throughput.
 */
const IDLE_UNREF_MS = 1_000;

/**
 * Hashes off the main thread, so hashing a large folder, or each piece of a file being received, never
 * stalls the event loop. Idle workers are unref'd: a Hasher alone does not keep the process alive.
 */
export class Hasher {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly maxQueued: number;
  /** How many files are hashed at once: callers with many files keep about this many in flight. */
  readonly workers: number;
  private nextId = 0;
  private closed = false;

  constructor(opts: HasherOptions = {}) {
    const workers = opts.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1)
      throw new Error(`workers must be a positive integer, got ${workers}`);
    this.workers = workers;
    this.maxQueued = opts.maxQueued ?? 1024;
    for (let i = 0; i < workers; i++) this.slots.push({ worker: null, job: null, refd: false, idleTimer: null });
  }

  async hashFile(path: string): Promise<FileHash> {
    const reply = await this.submit({ op: "file", path }, `hashing ${path}`);
    if (reply.op !== "file") throw new Error(`hashing ${path}: the worker answered another request`);
    return { sha256: reply.sha256, pieces: reply.pieces, size: reply.size };
  }

  /**
   * Checks a received piece against its SHA-256 and, if it matches, writes it at `position` in the
   * existing file at `path`. `actual` is null once written, or the piece's actual SHA-256 when it did
   * not match (nothing written). The bytes move to the worker and come back as `buffer`, for the caller
   * to fill again: the caller must not touch `bytes` meanwhile.
   */
  async writePiece(
    path: string,
    position: number,
    bytes: Uint8Array,
    sha256: string,
  ): Promise<{ actual: string | null; buffer: ArrayBuffer }> {
    // A view at the start of a buffer hands over the whole buffer; any other view is copied first.
    const buffer = bytes.byteOffset === 0 ? (bytes.buffer as ArrayBuffer) : bytes.slice().buffer;
    const reply = await this.submit(
      { op: "write-piece", path, position, buffer, length: bytes.byteLength, sha256 },
      `writing to ${path}`,
    );
    if (reply.op !== "write-piece") throw new Error(`writing to ${path}: the worker answered another request`);
    return { actual: reply.actual, buffer: reply.buffer };
  }

  /** Whether the `length` bytes at `position` of `path` hash to `sha256`. */
  async checkPiece(path: string, position: number, length: number, sha256: string): Promise<boolean> {
    const reply = await this.submit({ op: "check-piece", path, position, length, sha256 }, `checking ${path}`);
    return reply.op === "check-piece" && reply.actual === null;
  }

  private async submit(request: Request, what: string): Promise<Extract<HashReply, { op: string }>> {
    if (this.closed) throw new Error("hasher is closed");
    if (this.queue.length >= this.maxQueued)
      throw new Error(`hash queue full: ${this.maxQueued} requests already waiting (${what})`);
    const reply = await new Promise<HashReply>((resolve, reject) => {
      this.queue.push({ id: ++this.nextId, request, resolve, reject });
      this.dispatch();
    });
    if ("error" in reply) throw new Error(`${what}: ${reply.error}`);
    return reply;
  }

  /** Stops the workers; every waiting or running hash is rejected. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new Error("hasher is closed");
    for (const slot of this.slots) {
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      slot.idleTimer = null;
      slot.worker?.terminate();
      slot.worker = null;
      slot.job?.reject(err);
      slot.job = null;
    }
    for (const job of this.queue.splice(0)) job.reject(err);
  }

  private spawn(slot: Slot): Worker {
    const worker = new Worker(workerSpecifier());
    worker.onmessage = (event: MessageEvent<HashReply>) => this.settle(slot, event.data);
    // A crash or exit of the worker (a failed read is answered, not thrown) loses its job.
    worker.onerror = (event: ErrorEvent) => this.lost(slot, worker, `hash worker crashed: ${event.message}`);
    worker.addEventListener("close", () => this.lost(slot, worker, "hash worker exited"));
    return worker;
  }

  private settle(slot: Slot, reply: HashReply): void {
    const job = slot.job;
    if (!job || job.id !== reply.id) return;
    slot.job = null;
    slot.idleTimer = setTimeout(() => {
      slot.idleTimer = null;
      if (slot.job || !slot.refd) return;
      slot.worker?.unref();
      slot.refd = false;
    }, IDLE_UNREF_MS);
    slot.idleTimer.unref();
    job.resolve(reply);
    this.dispatch();
  }

  private lost(slot: Slot, worker: Worker, reason: string): void {
    if (slot.worker !== worker) return;
    worker.terminate();
    slot.worker = null;
    const job = slot.job;
    slot.job = null;
    if (job) job.reject(new Error(`${reason} during ${job.request.op} of ${job.request.path}`));
    this.dispatch();
  }

  private dispatch(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (slot.job) continue;
      const job = this.queue.shift();
      if (!job) return;
      slot.job = job;
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      slot.idleTimer = null;
      if (!slot.worker) {
        slot.worker = this.spawn(slot);
        slot.refd = true;
      }
      if (!slot.refd) slot.worker.ref();
      slot.refd = true;
      const request = { ...job.request, id: job.id } as HashRequest;
      const transfer = request.op === "write-piece" ? [request.buffer] : [];
      slot.worker.postMessage(request, transfer);
    }
  }
}
