/**
 * Failed operator logins (a wrong bearer token, a wrong token in the dashboard's form) per remote address: past
 * `maxFailures` within `windowMs`, that address is answered 429 until its oldest failure in the window ages out,
 * so nobody can try tokens at the rate the node answers. Bounded: at most `maxAddresses` addresses are tracked
 * (the oldest forgotten first), each with at most `maxFailures` times.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly opts: { maxFailures: number; windowMs: number; maxAddresses: number } = {
      maxFailures: 20,
      windowMs: 60_000,
      maxAddresses: 10_000,
    },
  ) {}

  /** How long `address` must wait before its next try, in ms; 0 when it may try now. */
  waitMs(address: string, now: number): number {
    const times = this.recent(address, now);
    if (times.length < this.opts.maxFailures) return 0;
    return (times[0] as number) + this.opts.windowMs - now;
  }

  fail(address: string, now: number): void {
    const times = this.recent(address, now);
    times.push(now);
    if (times.length > this.opts.maxFailures) times.shift();
    this.failures.delete(address);
    this.failures.set(address, times);
    if (this.failures.size > this.opts.maxAddresses) {
      this.failures.delete(this.failures.keys().next().value as string);
    }
  }

  get failuresTracked(): number {
    return this.failures.size;
  }

  private recent(address: string, now: number): number[] {
    const times = this.failures.get(address) ?? [];
    while (times.length > 0 && (times[0] as number) <= now - this.opts.windowMs) times.shift();
    if (times.length === 0) this.failures.delete(address);
    return times;
  }
}
