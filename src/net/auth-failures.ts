import type { Logger } from "../observability/log.ts";
import type { AuthFailure } from "../shared/status.ts";

export type Direction = "inbound" | "outbound";

const HINTS: readonly [RegExp, string][] = [
  [/bad signature|refuses our signature/, "is its cluster.secret the same as ours?"],
  [/not for this node|signed for/, "does its cluster file give that node's id this address (or is the id used twice)?"],
  [/clock skew/, "are both clocks synchronised (NTP)?"],
  [/unknown sender/, "is it listed in the cluster file, or did it join with another id?"],
];

/**
 * Peers whose signed requests fail, both ways, each warned about at most once per `warnEveryMs` (a wrong
 * secret fails every request, several times a second), and kept for `GET /status` while recent.
 */
export class AuthFailures {
  private readonly entries = new Map<string, AuthFailure & { direction: Direction; warnedAt: number }>();

  constructor(
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly opts = { warnEveryMs: 60_000, keepMs: 600_000, maxPeers: 256 },
  ) {}

  record(direction: Direction, peer: string, address: string | null, reason: string): void {
    const now = this.now();
    const key = `${direction}\n${peer}`;
    let entry = this.entries.get(key);
    if (!entry) {
      if (this.entries.size >= this.opts.maxPeers) this.forgetOldest();
      entry = { direction, peer, address, reason, count: 0, firstAt: now, lastAt: now, warnedAt: -Infinity };
      this.entries.set(key, entry);
    }
    Object.assign(entry, { address: address ?? entry.address, reason, lastAt: now, count: entry.count + 1 });
    if (now - entry.warnedAt < this.opts.warnEveryMs) return;
    entry.warnedAt = now;
    const hint = HINTS.find(([re]) => re.test(reason))?.[1] ?? "";
    const who = `${peer}${address && address !== peer ? ` (${address})` : ""}`;
    const message =
      direction === "inbound"
        ? `signed request from ${who} refused: ${reason}`
        : `${who} refuses our signature: ${reason}`;
    this.log.warn(`${message}${hint ? `; ${hint}` : ""}`, { peer, address, reason, failures: entry.count });
  }

  /** Recent failures, newest first. */
  list(direction: Direction): AuthFailure[] {
    const since = this.now() - this.opts.keepMs;
    return [...this.entries.values()]
      .filter((e) => e.direction === direction && e.lastAt >= since)
      .sort((a, b) => b.lastAt - a.lastAt)
      .map(({ peer, address, reason, count, firstAt, lastAt }) => ({ peer, address, reason, count, firstAt, lastAt }));
  }

  private forgetOldest(): void {
    let oldest: string | undefined;
    let at = Infinity;
    for (const [key, e] of this.entries) {
      if (e.lastAt < at) {
        at = e.lastAt;
        oldest = key;
      }
    }
    if (oldest !== undefined) this.entries.delete(oldest);
  }
}
