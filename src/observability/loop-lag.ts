/**
 * Measures event-loop lag: how late a short repeating timer fires. A high figure means something
 * blocked the loop, and heartbeats were late with it.
 */
export class LoopLagMonitor {
  private timer: ReturnType<typeof setInterval> | undefined;
  private samples: number[] = [];
  private last = 0;
  maxMs = 0;

  constructor(
    private readonly intervalMs = 50,
    private readonly window = 200,
  ) {}

  start(): void {
    this.last = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      const lag = Math.max(0, now - this.last - this.intervalMs);
      this.last = now;
      this.maxMs = Math.max(this.maxMs, lag);
      this.samples.push(lag);
      if (this.samples.length > this.window) this.samples.shift();
    }, this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  percentile(p: number): number {
    if (this.samples.length === 0) return 0;
    const sorted = [...this.samples].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
  }
}
