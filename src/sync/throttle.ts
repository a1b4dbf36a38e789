/** The unit a rate-limited transfer is paced in; also the smallest burst, so one chunk never waits on itself. */
export const RATE_CHUNK_BYTES = 64 * 1024;
/** How much may go out at once after a pause, in seconds of the rate. */
const BURST_SECONDS = 0.25;
/** Callers are few (one per transfer, and transfers are bounded by Slots); more waiting than this is a bug. */
const DEFAULT_MAX_WAITERS = 1024;

/** Time as the limiter sees it; tests pass their own. `sleep` resolves early (never rejects) when `wake` aborts. */
export interface Clock {
  now(): number;
  sleep(ms: number, wake: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, wake) =>
    new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wake.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      wake.addEventListener("abort", done, { once: true });
    }),
};

interface Waiter {
  remaining: number;
  paid: number;
  resolve: () => void;
  reject: (reason: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * A token bucket over bytes per second, shared by every transfer in one direction. Waiters are served strictly
 * in arrival order; one waiting for more than the burst is paid in instalments, so the rate holds for any size.
 */
export class RateLimiter {
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  readonly maxWaiters: number;
  private readonly clock: Clock;
  private readonly queue: Waiter[] = [];
  private tokens: number;
  private refilledAt: number;
  private pumping = false;
  private wake: AbortController | null = null;

  /** `bytesPerSecond` 0 means unlimited. */
  constructor(bytesPerSecond: number, opts: { clock?: Clock; maxWaiters?: number } = {}) {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) {
      throw new RangeError(`a rate must be a finite number of bytes per second >= 0, got ${bytesPerSecond}`);
    }
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = Math.max(RATE_CHUNK_BYTES, Math.round(bytesPerSecond * BURST_SECONDS));
    this.maxWaiters = opts.maxWaiters ?? DEFAULT_MAX_WAITERS;
    this.clock = opts.clock ?? realClock;
    this.tokens = this.burstBytes;
    this.refilledAt = this.clock.now();
  }

  get unlimited(): boolean {
    return this.bytesPerSecond === 0;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves once `bytes` may be sent; rejects with the signal's reason if it aborts first, giving back its place. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (!Number.isFinite(bytes) || bytes < 0) {
      return Promise.reject(new RangeError(`bytes must be a finite number >= 0, got ${bytes}`));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.unlimited || bytes === 0) return Promise.resolve();
    if (this.queue.length === 0) {
      this.refill();
      if (this.tokens >= bytes) {
        this.tokens -= bytes;
        return Promise.resolve();
      }
    }
    if (this.queue.length >= this.maxWaiters) {
      return Promise.reject(new RangeError(`the rate limiter already has ${this.maxWaiters} waiters, its limit`));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { remaining: bytes, paid: 0, resolve, reject };
      if (signal) {
        waiter.signal = signal;
        waiter.onAbort = () => this.abandon(waiter);
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.queue.push(waiter);
      void this.pump();
    });
  }

  private abandon(waiter: Waiter): void {
    const at = this.queue.indexOf(waiter);
    if (at < 0) return;
    this.queue.splice(at, 1);
    this.tokens = Math.min(this.burstBytes, this.tokens + waiter.paid);
    waiter.reject(waiter.signal?.reason);
    // The pump may be sleeping on this waiter's behalf; the next one may need less.
    this.wake?.abort();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let head = this.queue[0]; head; head = this.queue[0]) {
        this.refill();
        const pay = Math.min(head.remaining, this.tokens);
        head.remaining -= pay;
        head.paid += pay;
        this.tokens -= pay;
        if (head.remaining === 0) {
          this.queue.shift();
          if (head.onAbort) head.signal?.removeEventListener("abort", head.onAbort);
          head.resolve();
          continue;
        }
        const needed = Math.min(head.remaining, this.burstBytes) - this.tokens;
        this.wake = new AbortController();
        await this.clock.sleep(Math.max(1, Math.ceil((needed / this.bytesPerSecond) * 1000)), this.wake.signal);
      }
    } finally {
      this.wake = null;
      this.pumping = false;
    }
  }

  private refill(): void {
    const now = this.clock.now();
    const earned = ((now - this.refilledAt) / 1000) * this.bytesPerSecond;
    this.tokens = Math.min(this.burstBytes, this.tokens + earned);
    this.refilledAt = now;
  }
}

/** A counting semaphore without a queue: whoever finds no free slot is told so at once. */
export class Slots {
  readonly limit: number;
  private used = 0;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`a slot limit must be an integer >= 1, got ${limit}`);
    this.limit = limit;
  }

  get inUse(): number {
    return this.used;
  }

  tryAcquire(): boolean {
    if (this.used >= this.limit) return false;
    this.used++;
    return true;
  }

  release(): void {
    if (this.used === 0) throw new Error("released a slot that was not held");
    this.used--;
  }
}
