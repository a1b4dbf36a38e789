import type { Logger } from "./log.ts";

export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
  now?: () => number;
  random?: () => number;
}

/**
 * One kind of write that a full, failing or read-only disk may refuse (peer rows, trace rows, the work
 * outbox...), done from a timer or a callback, where a throw would end the process. It never throws:
 * the first failure of an episode is logged, later ones only counted, and one line says when the write
 * succeeds again. While failing, attempts back off (doubling, with jitter) so a full disk is not hammered.
 */
export class GuardedWrite {
  private failures = 0;
  private failingSince = 0;
  private backoffMs = 0;
  private nextAttemptAt = 0;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(
    private readonly log: Logger,
    /** What is written, for the log lines: "peer state write", "trace flush". */
    private readonly what: string,
    opts: BackoffOptions = {},
  ) {
    this.minMs = opts.minMs ?? 200;
    this.maxMs = opts.maxMs ?? 5_000;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  get failing(): boolean {
    return this.failures > 0;
  }

  /** Whether an attempt is due: always, unless the write is failing and backing off. */
  due(): boolean {
    return this.failures === 0 || this.now() >= this.nextAttemptAt;
  }

  /** Runs `write` when an attempt is due; true when it ran and succeeded. */
  run(write: () => void): boolean {
    if (!this.due()) return false;
    try {
      write();
    } catch (e) {
      this.failed(e);
      return false;
    }
    this.succeeded();
    return true;
  }

  /** For a caller that makes the attempt itself (across an await): the attempt worked. */
  succeeded(): void {
    if (this.failures === 0) return;
    this.log.info(`${this.what} succeeds again`, {
      failedAttempts: this.failures,
      failingForMs: this.now() - this.failingSince,
    });
    this.failures = 0;
    this.backoffMs = 0;
  }

  /** For a caller that makes the attempt itself: the attempt failed with `e`. */
  failed(e: unknown): void {
    if (this.failures === 0) {
      this.failingSince = this.now();
      this.log.error(`${this.what} failed; retrying with backoff`, { error: errorText(e) });
    }
    this.failures++;
    this.backoffMs = Math.min(this.maxMs, Math.max(this.minMs, this.backoffMs * 2));
    this.nextAttemptAt = this.now() + this.backoffMs * (0.5 + this.random());
  }
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
