import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exampleClusterToml } from "../../src/cli/init.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { parseClusterFile } from "../../src/config/load.ts";

/** `[runs.<name>]`: a run's policy is checked when the cluster file loads, every refusal naming its key. */

const STAGES = `
[jobs.selfplay]
command = ["player", "--model", "{model}", "--games", "{games}", "--out", "{output_dir}"]

[jobs.train]
command = ["trainer", "--from", "{model}", "--games", "{games_dir}", "--out", "{output_dir}", "--steps", "{steps}"]

[jobs.match]
command = ["arena", "{candidate}", "{opponent}", "{games}", "--sims", "{sims}"]

[jobs.bootstrap]
command = ["trainer", "--init", "--seed", "{seed}", "--out", "{output_dir}"]
`;

const RUN = `
[runs.c4]
bootstrap = { command = "bootstrap" }
baselines = ["random", "mcts:200"]

[runs.c4.params.train]
steps = 200

[runs.c4.params.match]
sims = 100
`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "p2p-runs-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function load(extra: string) {
  const path = join(dir, "cluster.toml");
  writeFileSync(path, exampleClusterToml(3, 9300, { workload: false }) + STAGES + extra);
  return parseClusterFile(path);
}

function refusal(extra: string): string {
  try {
    load(extra);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error("expected the file to be refused");
}

describe("a run's policy", () => {
  test("defaults fill what is not written; the gate is the SPRT unless it says none", () => {
    const run = load(RUN).runs.c4;
    expect(run).toMatchObject({
      weight: 1,
      selfplay: "selfplay",
      train: "train",
      match: "match",
      games: "games",
      models: "models",
      selfplay_games: 8,
      train_after_games: 256,
      train_cooldown: 0,
      gate: { elo0: 0, elo1: 50, alpha: 0.05, beta: 0.05, max_games: 400, pairs_per_item: 4 },
      baselines: ["random", "mcts:200"],
      params: { selfplay: {}, train: { steps: 200 }, match: { sims: 100 } },
    });
    const none = load(
      RUN.replace('bootstrap = { command = "bootstrap" }', 'bootstrap = { model = "gen0.bin" }\ngate = "none"'),
    );
    expect(none.runs.c4?.gate).toBe("none");
    expect(none.runs.c4?.bootstrap).toEqual({ model: "gen0.bin" });
  });

  test.each([
    ["gate.elo1", "[runs.c4.gate]\nelo0 = 10\nelo1 = 5", "elo1 greater than elo0"],
    ["gate.max_games", "[runs.c4.gate]\nmax_games = 401", "an even number of games"],
    ["gate.alpha", "[runs.c4.gate]\nalpha = 0.9", "a number from 0.001 to 0.5"],
    ["baselines[1]", 'baselines = ["random", "mcts:lots"]', "a baseline"],
    ["train_cooldown", 'train_cooldown = "soon"', "a duration"],
    ["selfplay_games", "selfplay_games = 1e9", "an integer from 1 to 100000"],
    ["weight", "weight = -1", "a number from 0.001 to 1000"],
    ["nonsense", "nonsense = 1", "unknown key"],
  ])("an invalid %s is refused, naming the key", (key, line, expected) => {
    const text = RUN.replace('baselines = ["random", "mcts:200"]', line.startsWith("[") ? "" : line);
    const message = refusal(line.startsWith("[") ? `${text}\n${line}\n` : text);
    expect(message).toContain(`runs.c4.${key}`);
    expect(message).toContain(expected);
  });

  test("a stage, bootstrap or category the file lacks is refused, naming the run's key", () => {
    expect(refusal(RUN.replace("[runs.c4]", '[runs.c4]\ntrain = "learn"'))).toContain(
      'runs.c4.train: expected a job type with a [jobs.learn] template, found "learn"',
    );
    expect(refusal(RUN.replace('command = "bootstrap"', 'command = "init0"'))).toContain("runs.c4.bootstrap.command");
    expect(refusal(RUN.replace("[runs.c4]", '[runs.c4]\ngames = "replays"'))).toContain(
      'runs.c4.games: expected a data category with a [data.replays] table, found "replays"',
    );
  });

  test("a template placeholder that neither the run nor the stage's params fill is refused", () => {
    const message = refusal(RUN.replace("sims = 100", "visits = 100"));
    expect(message).toContain("runs.c4.match");
    expect(message).toContain("{sims} in [jobs.match]");
    expect(message).toContain("[runs.c4.params.match]");
  });
});
