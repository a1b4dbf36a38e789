import type { Retired } from "../sync/model.ts";

/**
 * What a run keeps on disk, decided in the replicated state so every node deletes alike (src/sync/retired.ts):
 * game files by epoch, the run's count of trainings when their self-play was queued (each epoch a numbered
 * folder; it only grows, even when an operator rolls the best back), and models by generation.
 */

/** A game folder's name in the run's games folder: the epoch, zero-padded so names sort by it. */
export function epochFolder(epoch: number): string {
  return String(epoch).padStart(6, "0");
}

export interface ModelKept {
  id: string;
  generation: number;
  state: string;
}

/** Models of generations below this are archived: the newest `keep` generations stay. */
export function modelCutoff(models: readonly ModelKept[], keep: number): number {
  return Math.max(0, models.reduce((m, x) => Math.max(m, x.generation), 0) - keep + 1);
}

/**
 * The models to archive now: those below the cutoff, except the pinned ones (the best, the candidate, the
 * players of a running A/B test or tournament), which stay until they are no longer pinned.
 */
export function modelsToArchive(models: readonly ModelKept[], keep: number, pinned: ReadonlySet<string>): string[] {
  const below = modelCutoff(models, keep);
  return models.filter((m) => m.generation < below && m.state !== "archived" && !pinned.has(m.id)).map((m) => m.id);
}

/** The rule for a run's models folder: below the cutoff, only the files of models not archived stay. */
export function modelsRetired(run: string, models: readonly ModelKept[], keep: number): Retired | null {
  const below = modelCutoff(models, keep);
  if (below === 0) return null;
  const except = models.filter((m) => m.generation < below && m.state !== "archived").map((m) => m.id);
  return { under: run, below, except };
}
