import type { Client } from "../client/client.ts";

/**
 * The story of the cluster's training runs as `up` tells it: each generation queued, trained, gated and promoted or
 * rejected, with the best's Elo after every decision. Polls the run routes (following the leader); a node that does
 * not answer for a moment is asked again, with backoff.
 */

const TOLD = new Set([
  "configure",
  "best-set",
  "train-queued",
  "trained",
  "train-failed",
  "decided",
  "pause",
  "resume",
]);

export async function tellRuns(
  target: Client,
  print: (line: string) => void,
  stopped: () => boolean,
  only?: string,
): Promise<void> {
  const last = new Map<string, number>();
  let backoffMs = 1_000;
  while (!stopped()) {
    try {
      const { runs } = await target.call("runs");
      for (const { name } of runs.filter((r) => only === undefined || r.name === only)) {
        const { history } = await target.call("runHistory", { params: { name }, query: { limit: 200 } });
        for (const row of history.filter((h) => h.seq > (last.get(name) ?? 0))) {
          last.set(name, row.seq);
          if (!TOLD.has(row.event)) continue;
          print(`${time(row.at)}  ${name}: ${row.cause ?? row.event}`);
          if (row.event === "decided" || row.event === "best-set")
            print(`${time(row.at)}  ${name}: ${await eloLine(target, name)}`);
        }
      }
      backoffMs = 1_000;
    } catch {
      backoffMs = Math.min(10_000, backoffMs * 2);
    }
    await Bun.sleep(backoffMs * (0.75 + Math.random() / 2));
  }
}

async function eloLine(target: Client, name: string): Promise<string> {
  const elo = await target.call("runElo", { params: { name } });
  const promoted = elo.ratings
    .filter((r) => r.state === "promoted")
    .sort((a, b) => (a.generation ?? 0) - (b.generation ?? 0))
    .map((r) => `g${r.generation} ${signed(r.elo)}`);
  const baselines = elo.ratings.filter((r) => r.state === "baseline").map((r) => `${r.id} ${signed(r.elo)}`);
  return `Elo of the promoted generations: ${promoted.join(", ")}${baselines.length ? ` (baselines: ${baselines.join(", ")})` : ""}`;
}

const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(0)}`;
const time = (at: number) => new Date(at).toISOString().slice(11, 19);
