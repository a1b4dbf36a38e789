import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, unlinkSync } from "node:fs";
import { basename, extname, join, relative, resolve, sep } from "node:path";
import * as v from "valibot";
import type { DataCategory } from "../config/load.ts";
import type { RunPolicy } from "./policy.ts";
import { epochFolder } from "./retention.ts";
import { type RunItem, resultProblem, stageResultSchemas } from "./stage-item.ts";

/**
 * The node's side of a run's stage (docs/JOBS.md, section 4): before the job, the models it reads by id become
 * local files and the run's folders are given; after it, what it wrote is checked against the contract and
 * moved where data sync shares it (game files into the games folder, a model under its SHA-256).
 */

export interface RunFolders {
  /** This node's folder of the run's games, and of its models (inside their data categories). */
  games: string;
  models: string;
}

export function runFolders(run: string, policy: RunPolicy, data: readonly DataCategory[]): RunFolders | null {
  const games = data.find((c) => c.name === policy.games);
  const models = data.find((c) => c.name === policy.models);
  if (!games || !models) return null;
  return { games: join(games.root, run), models: join(models.root, run) };
}

/** A model's file name in its run's folder: the generation first (for people), the SHA-256 (its identity). */
export function modelFileName(generation: number, id: string, ext: string): string {
  return `${String(generation).padStart(4, "0")}-${id}${ext}`;
}

/** The local file of a model, by id, or null while data sync has not brought it here. */
export function findModel(folders: RunFolders, id: string): string | null {
  let names: string[];
  try {
    names = readdirSync(folders.models);
  } catch {
    return null;
  }
  const name = names.find((n) => !n.startsWith(".") && n.includes(`-${id}`));
  return name ? join(folders.models, name) : null;
}

/** The models an item reads, by id (a baseline opponent is no file). */
export function modelsNeeded(item: RunItem): string[] {
  const ids = [item.model, item.candidate, item.opponent].filter(
    (x): x is string => typeof x === "string" && /^[0-9a-f]{64}$/.test(x),
  );
  return [...new Set(ids)];
}

/**
 * The item's config as its job sees it (ids replaced by local paths, the games folder added) and the stage's
 * environment; null for a model that is not here yet.
 */
export function stageInputs(
  item: RunItem,
  config: Record<string, unknown>,
  folders: RunFolders,
): { config: Record<string, unknown>; env: Record<string, string> } | { missing: string } {
  const path = (id: string | undefined): string | undefined | null =>
    id === undefined ? undefined : /^[0-9a-f]{64}$/.test(id) ? findModel(folders, id) : id;
  const out: Record<string, unknown> = { ...config };
  const env: Record<string, string> = {
    P2P_RUN: item.run,
    P2P_GENERATION: String(item.generation),
    P2P_SEED: String(item.seed),
  };
  for (const [key, variable] of [
    ["model", "P2P_MODEL"],
    ["candidate", "P2P_CANDIDATE"],
    ["opponent", "P2P_OPPONENT"],
  ] as const) {
    const value = path(item[key]);
    if (value === null) return { missing: item[key] as string };
    if (value === undefined) continue;
    out[key] = value;
    env[variable] = value;
  }
  if (item.stage === "train") {
    mkdirSync(folders.games, { recursive: true });
    out.games_dir = folders.games;
    env.P2P_GAMES_DIR = folders.games;
  }
  return { config: out, env };
}

export type Published = { result: unknown; moved: "games" | "models" | null } | { error: string };

/**
 * Checks a finished job's result against its stage's contract and moves its outputs into the run's folders:
 * self-play's game files (one rename each), a model under its SHA-256 (the result gains `modelId`, `modelFile`).
 */
export async function publishStage(
  item: RunItem,
  result: unknown,
  outputDir: string,
  folders: RunFolders,
  hashFile: (path: string) => Promise<string>,
  skip: (name: string) => boolean,
): Promise<Published> {
  const fail = (problem: string) => ({ error: `${item.stage} broke the job contract: ${problem}` });
  if (item.stage === "match") {
    const problem = resultProblem(stageResultSchemas.match, result);
    return problem ? fail(problem) : { result, moved: null };
  }
  if (item.stage === "selfplay") {
    const problem = resultProblem(stageResultSchemas.selfplay, result);
    if (problem) return fail(problem);
    const folder = join(folders.games, epochFolder(item.epoch ?? item.generation));
    mkdirSync(folder, { recursive: true });
    for (const name of readdirSync(outputDir)) {
      if (skip(name) || name.startsWith(".")) continue;
      const target = join(folder, existsSync(join(folder, name)) ? `${item.seed}-${name}` : name);
      moveFile(join(outputDir, name), target);
    }
    return { result, moved: "games" };
  }
  const problem = resultProblem(stageResultSchemas.model, result);
  if (problem) return fail(problem);
  const named = (v.parse(stageResultSchemas.model, result) as { model: string }).model;
  const file = resolve(outputDir, named);
  const inside = relative(outputDir, file);
  if (inside.startsWith("..") || inside.includes(`..${sep}`) || !existsSync(file)) {
    return fail(`field "model": expected a file the job wrote in its output folder, found "${named}"`);
  }
  const id = await hashFile(file);
  mkdirSync(folders.models, { recursive: true });
  const name = modelFileName(item.generation, id, extname(basename(file)) || ".model");
  moveFile(file, join(folders.models, name));
  return {
    result: { ...(result as Record<string, unknown>), modelId: id, modelFile: `${item.run}/${name}` },
    moved: "models",
  };
}

/** A rename; across file systems a copy under a hidden name (scanners skip it), renamed, then the source removed. */
function moveFile(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
    const hidden = join(to, "..", `.tmp-${basename(to)}`);
    copyFileSync(from, hidden);
    renameSync(hidden, to);
    unlinkSync(from);
  }
}

/**
 * Generation 0 from a file the operator names (`bootstrap = { model = ... }`): copied into this node's models
 * folder under its SHA-256, where data sync shares it like any model.
 */
export async function importModel(
  source: string,
  run: string,
  folders: RunFolders,
  hashFile: (path: string) => Promise<string>,
): Promise<{ id: string; file: string }> {
  if (!existsSync(source)) throw new Error(`runs.${run}.bootstrap.model: no file at ${source}`);
  const id = await hashFile(source);
  const name = modelFileName(0, id, extname(source) || ".model");
  const target = join(folders.models, name);
  if (!existsSync(target)) {
    mkdirSync(folders.models, { recursive: true });
    const hidden = join(folders.models, `.tmp-${name}`);
    await Bun.write(hidden, Bun.file(source));
    renameSync(hidden, target);
  }
  return { id, file: `${run}/${name}` };
}
