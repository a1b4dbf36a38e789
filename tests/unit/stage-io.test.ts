import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { modelFileName, publishStage, type RunFolders, stageInputs } from "../../src/runs/stage-io.ts";
import type { RunItem } from "../../src/runs/stage-item.ts";

/** The node's side of a run's stage: models by id to files, the run's folders, the contract checked, outputs moved. */

let dir: string;
let folders: RunFolders;
let out: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "p2p-stage-"));
  folders = { games: join(dir, "games", "c4"), models: join(dir, "models", "c4") };
  out = join(dir, "job");
  mkdirSync(out);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const A = "a".repeat(64);
const B = "b".repeat(64);
const hash = async (path: string) => new Bun.CryptoHasher("sha256").update(await Bun.file(path).bytes()).digest("hex");
const item = (over: Partial<RunItem>): RunItem => ({ run: "c4", stage: "match", generation: 2, seed: 9, ...over });

describe("a stage's inputs", () => {
  test("a model not here yet is missing; once synced, ids become paths and the stage variables are set", () => {
    const match = item({ candidate: B, opponent: A, gate: true });
    expect(stageInputs(match, { games: 8 }, folders)).toEqual({ missing: B });
    mkdirSync(folders.models, { recursive: true });
    for (const [g, id] of [
      [1, A],
      [2, B],
    ] as const)
      writeFileSync(join(folders.models, modelFileName(g, id, ".model")), "w");
    const inputs = stageInputs(match, { games: 8, candidate: B, opponent: A }, folders);
    expect(inputs).toEqual({
      config: {
        games: 8,
        candidate: join(folders.models, `0002-${B}.model`),
        opponent: join(folders.models, `0001-${A}.model`),
      },
      env: {
        P2P_RUN: "c4",
        P2P_GENERATION: "2",
        P2P_SEED: "9",
        P2P_CANDIDATE: join(folders.models, `0002-${B}.model`),
        P2P_OPPONENT: join(folders.models, `0001-${A}.model`),
      },
    });
  });

  test("a baseline opponent stays a name; training gets the run's games folder", () => {
    mkdirSync(folders.models, { recursive: true });
    writeFileSync(join(folders.models, modelFileName(2, B, ".model")), "w");
    const baseline = stageInputs(item({ candidate: B, opponent: "mcts:200", gate: false }), {}, folders);
    expect(baseline).toMatchObject({ config: { opponent: "mcts:200" }, env: { P2P_OPPONENT: "mcts:200" } });
    const train = stageInputs(item({ stage: "train", model: B }), { model: B }, folders);
    expect(train).toMatchObject({ config: { games_dir: folders.games }, env: { P2P_GAMES_DIR: folders.games } });
    expect(existsSync(folders.games)).toBe(true);
  });
});

describe("a stage's outputs", () => {
  test("self-play's game files move into the run's games folder, in the item's epoch; the log stays", async () => {
    writeFileSync(join(out, "games-1.jsonl"), "{}\n");
    writeFileSync(join(out, "job.log"), "log");
    const published = await publishStage(
      item({ stage: "selfplay", epoch: 12 }),
      { games: 1, positions: 9 },
      out,
      folders,
      hash,
      (n) => n === "job.log",
    );
    expect(published).toEqual({ result: { games: 1, positions: 9 }, moved: "games" });
    expect(readdirSync(folders.games)).toEqual(["000012"]);
    expect(readdirSync(join(folders.games, "000012"))).toEqual(["games-1.jsonl"]);
    expect(readdirSync(out)).toEqual(["job.log"]);
  });

  test("a trained model is named by its SHA-256 and the result gains its id and file", async () => {
    writeFileSync(join(out, "cand.model"), "weights");
    const id = await hash(join(out, "cand.model"));
    const published = await publishStage(
      item({ stage: "train" }),
      { model: "cand.model", loss: 1 },
      out,
      folders,
      hash,
      () => false,
    );
    expect(published).toEqual({
      result: { model: "cand.model", loss: 1, modelId: id, modelFile: `c4/0002-${id}.model` },
      moved: "models",
    });
    expect(readdirSync(folders.models)).toEqual([`0002-${id}.model`]);
  });

  test("a result that breaks the contract fails, naming the field and what was expected", async () => {
    const bad = async (stage: RunItem["stage"], result: unknown) => {
      const published = await publishStage(item({ stage }), result, out, folders, hash, () => false);
      return "error" in published ? published.error : "accepted";
    };
    expect(await bad("selfplay", { positions: 3 })).toContain(
      'selfplay broke the job contract: the result line field "games"',
    );
    expect(await bad("match", { wins: 1, draws: 0, losses: 0, pairs: [0, 0, 0, 0, 1] })).toContain(
      "pairs counting half the games",
    );
    expect(await bad("train", { samples: 5 })).toContain('field "model"');
    expect(await bad("train", { model: "../../etc/passwd" })).toContain("a file the job wrote in its output folder");
    expect(await bad("train", { model: "missing.model" })).toContain("a file the job wrote in its output folder");
  });
});
