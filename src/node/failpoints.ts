/**
 * Faults a test can switch on in a real binary, named in P2P_FAILPOINTS as "name=count,...": each
 * named fault fires `count` times. Off unless set; a node logs the ones it was started with.
 */
export type FailpointName = "sync.corrupt-served-piece" | "consensus.read-without-lease";

const KNOWN: readonly FailpointName[] = ["sync.corrupt-served-piece", "consensus.read-without-lease"];

export class Failpoints {
  private readonly remaining = new Map<FailpointName, number>();

  constructor(spec = "") {
    for (const part of spec.split(",").map((s) => s.trim())) {
      if (!part) continue;
      const [name, count] = part.split("=");
      if (!KNOWN.includes(name as FailpointName)) throw new Error(`P2P_FAILPOINTS: unknown failpoint "${name}"`);
      const n = Number(count ?? 1);
      if (!Number.isInteger(n) || n < 1) throw new Error(`P2P_FAILPOINTS: "${part}" needs a positive count`);
      this.remaining.set(name as FailpointName, n);
    }
  }

  get armed(): Record<string, number> {
    return Object.fromEntries(this.remaining);
  }

  /** True (and one fewer left) when the fault should fire now. */
  fire(name: FailpointName): boolean {
    const left = this.remaining.get(name) ?? 0;
    if (left <= 0) return false;
    this.remaining.set(name, left - 1);
    return true;
  }
}
