import type { HashReply, HashRequest } from "./hash-worker.ts";

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
  path: string;
  resolve: (hash: FileHash) => void;
  reject: (err: Error) => void;
}

interface Slot {
  /** Started on first use, and again after a crash: a worker that cannot start fails each job, not in a loop. */
  worker: Worker | null;
  job: Job | null;
}

/**
 * Hashes files off the main thread, so hashing a large folder never stalls the event loop.
 * Idle workers are unref'd: a Hasher alone does not keep the process alive.
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
    for (let i = 0; i < workers; i++) this.slots.push({ worker: null, job: null });
  }

  hashFile(path: string): Promise<FileHash> {
    if (this.closed) return Promise.reject(new Error("hasher is closed"));
    if (this.queue.length >= this.maxQueued) {
      return Promise.reject(new Error(`hash queue full: ${this.maxQueued} files already waiting (${path})`));
    }
    return new Promise<FileHash>((resolve, reject) => {
      this.queue.push({ id: ++this.nextId, path, resolve, reject });
      this.dispatch();
    });
  }

  /** Stops the workers; every waiting or running hash is rejected. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new Error("hasher is closed");
    for (const slot of this.slots) {
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
    slot.worker?.unref();
    if ("error" in reply) job.reject(new Error(`hashing ${job.path}: ${reply.error}`));
    else job.resolve({ sha256: reply.sha256, pieces: reply.pieces, size: reply.size });
    this.dispatch();
  }

  private lost(slot: Slot, worker: Worker, reason: string): void {
    if (slot.worker !== worker) return;
    worker.terminate();
    slot.worker = null;
    const job = slot.job;
    slot.job = null;
    if (job) job.reject(new Error(`${reason} while hashing ${job.path}`));
    this.dispatch();
  }

  private dispatch(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (slot.job) continue;
      const job = this.queue.shift();
      if (!job) return;
      slot.job = job;
      slot.worker ??= this.spawn(slot);
      slot.worker.ref();
      const request: HashRequest = { id: job.id, path: job.path };
      slot.worker.postMessage(request);
    }
  }
}
