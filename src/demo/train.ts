// Training: samples (position, visit distribution, result for the side to move) from a window of the most recent
// game files, doubled by mirroring, and Adam steps on random minibatches drawn with a seeded generator.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { TEMP_PREFIX } from "./files.ts";
import { COLUMNS, INPUT_SIZE, Position } from "./game.ts";
import { Adam, type Losses, type Network } from "./net.ts";
import type { Rng } from "./random.ts";
import { parseGameLine } from "./selfplay.ts";

export interface Samples {
  count: number;
  inputs: Float32Array;
  policies: Float32Array;
  values: Float32Array;
}

export interface GameWindow {
  games: string[];
  files: number;
  skipped: number;
}

/** Game files (*.jsonl, not temporary) under the folders, newest first by modification time, then by path. */
function gameFiles(dirs: string[]): string[] {
  const found: { path: string; mtime: number }[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && entry.name.endsWith(".jsonl")) found.push({ path, mtime: statSync(path).mtimeMs });
    }
  };
  for (const dir of dirs) walk(dir);
  found.sort((a, b) => b.mtime - a.mtime || (a.path < b.path ? -1 : 1));
  return found.map((f) => f.path);
}

/** The most recent `window` games; lines that are not valid games are counted and skipped. */
export function loadWindow(dirs: string[], window: number): GameWindow {
  const games: string[] = [];
  let skipped = 0;
  let files = 0;
  for (const path of gameFiles(dirs)) {
    if (games.length >= window) break;
    files++;
    const lines = readFileSync(path, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "");
    for (const line of lines.reverse()) {
      if (games.length >= window) break;
      try {
        parseGameLine(line);
        games.push(line);
      } catch {
        skipped++;
      }
    }
  }
  return { games, files, skipped };
}

export function buildSamples(lines: string[]): Samples {
  const records = lines.map(parseGameLine);
  const positions = records.reduce((total, r) => total + r.moves.length, 0);
  const count = positions * 2;
  const samples: Samples = {
    count,
    inputs: new Float32Array(count * INPUT_SIZE),
    policies: new Float32Array(count * COLUMNS),
    values: new Float32Array(count),
  };
  let i = 0;
  for (const record of records) {
    const position = Position.start();
    const mirrored = Position.start();
    record.visits.forEach((visits, ply) => {
      const total = visits.reduce((sum, n) => sum + n, 0) || 1;
      const value = ply % 2 === 0 ? record.result : -record.result;
      position.encode(samples.inputs, i * INPUT_SIZE);
      mirrored.encode(samples.inputs, (i + 1) * INPUT_SIZE);
      for (let c = 0; c < COLUMNS; c++) {
        samples.policies[i * COLUMNS + c] = (visits[c] ?? 0) / total;
        samples.policies[(i + 1) * COLUMNS + c] = (visits[COLUMNS - 1 - c] ?? 0) / total;
      }
      samples.values[i] = value;
      samples.values[i + 1] = value;
      i += 2;
      const move = record.moves.charCodeAt(ply) - 49;
      position.play(move);
      mirrored.play(COLUMNS - 1 - move);
    });
  }
  return samples;
}

export interface TrainOptions {
  steps: number;
  batch: number;
  learningRate: number;
}

export const TRAIN_DEFAULTS: TrainOptions = { steps: 200, batch: 128, learningRate: 2e-3 };

/** Runs one Adam step per call on a random minibatch; returns the minibatch's mean losses. */
export function trainer(net: Network, samples: Samples, options: TrainOptions, rng: Rng): () => Losses {
  const adam = new Adam(net.params.length, options.learningRate);
  const grads = new Float32Array(net.params.length);
  return () => {
    grads.fill(0);
    let policy = 0;
    let value = 0;
    for (let b = 0; b < options.batch; b++) {
      const i = rng.int(samples.count);
      const losses = net.accumulateGradient(
        samples.inputs,
        i * INPUT_SIZE,
        samples.policies,
        i * COLUMNS,
        samples.values[i] as number,
        grads,
      );
      policy += losses.policy;
      value += losses.value;
    }
    adam.apply(net.params, grads, 1 / options.batch);
    return { policy: policy / options.batch, value: value / options.batch };
  };
}
