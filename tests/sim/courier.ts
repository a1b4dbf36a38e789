import type { RaftSim } from "./raft-sim.ts";

/**
 * A proposal a simulated worker awaits: the log index and the entry it must find there, where its answer sits in a
 * grouped entry's result, and (for a report) the item and the lease it was about.
 */
export interface AwaitedEntry {
  index: number;
  key: string;
  kind: "claim" | "report";
  item?: string;
  leaseId?: string;
  pos?: number;
  deadline: number;
}

interface Sender {
  waiting: AwaitedEntry[];
}

/** How long a worker waits for its proposal to commit before it gives up on that entry. */
const AWAIT_MS = 2_000;

/**
 * Carries simulated workers' claims and reports to the leader: one entry each, or, while `grouped`, gathered into
 * one `work.claim.batch` and one `work.report.batch` entry at `flush()`, as the leader groups what reaches it in
 * one turn (the copies of a duplicated report included). Shared by the work-queue and training-run simulations.
 */
export class Courier<W extends Sender, Offer> {
  grouped = false;
  private claims: Array<{ w: W; request: { offer: Offer; max: number } }> = [];
  private reports: Array<{ w: W; body: { id: string; leaseId?: string } }> = [];

  constructor(
    private readonly sim: RaftSim,
    private readonly leaseMs: number,
  ) {}

  claim(w: W, request: { offer: Offer; max: number }): void {
    if (this.grouped) {
      this.claims.push({ w, request });
      return;
    }
    const p = this.sim.proposeCommand("work.claim", { ...request, now: this.sim.now, leaseMs: this.leaseMs });
    if (p) w.waiting.push({ ...p, kind: "claim", deadline: this.sim.now + AWAIT_MS });
  }

  report(w: W, body: { id: string; leaseId?: string }): void {
    if (this.grouped) {
      this.reports.push({ w, body });
      return;
    }
    const p = this.sim.proposeCommand("work.report", { ...body, now: this.sim.now, leaseMs: this.leaseMs });
    if (p) w.waiting.push({ ...p, ...this.awaitReport(body) });
  }

  flush(): void {
    const { sim } = this;
    if (this.claims.length > 0) {
      const claims = this.claims.map((c) => c.request);
      const p = sim.proposeCommand("work.claim.batch", { claims, now: sim.now, leaseMs: this.leaseMs });
      if (p)
        for (const [pos, c] of this.claims.entries())
          c.w.waiting.push({ ...p, kind: "claim", pos, deadline: sim.now + AWAIT_MS });
    }
    if (this.reports.length > 0) {
      const reports = this.reports.map((x) => x.body);
      const p = sim.proposeCommand("work.report.batch", { reports, now: sim.now, leaseMs: this.leaseMs });
      if (p)
        for (const [pos, x] of this.reports.entries()) x.w.waiting.push({ ...p, ...this.awaitReport(x.body), pos });
    }
    this.claims = [];
    this.reports = [];
  }

  private awaitReport(body: { id: string; leaseId?: string }) {
    return { kind: "report" as const, item: body.id, leaseId: body.leaseId, deadline: this.sim.now + AWAIT_MS };
  }
}
