// `p2p-orchestrator demo ...`: the Connect Four AlphaZero workload as commands that follow the job contract
// (docs/JOBS.md): progress on stderr, the last stdout line one JSON object, nothing half-written on SIGTERM.

import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { defineCommand } from "citty";
import { writeFileAtomic } from "./files.ts";
import { Position } from "./game.ts";
import { addPair, emptyResult, playGame, randomOpening } from "./match.ts";
import { chooseMove, netEvaluator, Search } from "./mcts.ts";
import { encodeModel, generationZero, readModel, sha256 } from "./model-file.ts";
import { DEFAULT_ARCHITECTURE } from "./net.ts";
import { makePlayer } from "./players.ts";
import { Rng } from "./random.ts";
import {
  intParam,
  numberParam,
  Progress,
  param,
  printResult,
  required,
  runCommand,
  STOPPED_EXIT_CODE,
  StopSignal,
  UsageError,
  yieldToEvents,
} from "./run-control.ts";
import { type GameRecord, playSelfPlayGame, SELFPLAY_DEFAULTS } from "./selfplay.ts";
import { buildSamples, loadWindow, TRAIN_DEFAULTS, trainer } from "./train.ts";

const seedArg = { seed: { type: "string", description: "Seed (default $P2P_SEED, else 0)" } } as const;

function seedOf(flag: unknown): number {
  return intParam(param(flag, "seed", "P2P_SEED"), "seed", 0) >>> 0;
}

function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
}

const initCommand = defineCommand({
  meta: { name: "init", description: "Create a generation-0 model from a seed" },
  args: {
    out: { type: "string", description: "Output folder (or a file name ending in .model)", required: true },
    hidden: { type: "string", description: "Hidden layer sizes (default 128,128)" },
    ...seedArg,
  },
  run: ({ args }) =>
    runCommand(() => {
      const seed = seedOf(args.seed);
      const { header, net } = generationZero(seed, hiddenLayers(args.hidden));
      const bytes = encodeModel(header, net);
      const id = sha256(bytes);
      const toFile = args.out.endsWith(".model") && !(existsSync(args.out) && statSync(args.out).isDirectory());
      const path = toFile ? args.out : join(args.out, `gen0-${id.slice(0, 12)}.model`);
      if (!toFile) ensureDir(args.out);
      writeFileAtomic(path, bytes);
      printResult({ model: path, sha256: id, generation: 0, seed, parameters: net.params.length });
    }),
});

const selfplayCommand = defineCommand({
  meta: { name: "selfplay", description: "Play games of a model against itself and write them as JSONL" },
  args: {
    model: { type: "string", description: "Model file (default $P2P_MODEL)" },
    games: { type: "string", description: "Number of games ($P2P_PARAM_GAMES)" },
    out: { type: "string", description: "Output folder (default $P2P_OUTPUT_DIR)" },
    sims: { type: "string", description: `Simulations per move (default ${SELFPLAY_DEFAULTS.sims})` },
    "sampled-plies": {
      type: "string",
      description: `Plies sampled from the visit counts (default ${SELFPLAY_DEFAULTS.sampledPlies})`,
    },
    ...seedArg,
  },
  run: ({ args }) =>
    runCommand(async () => {
      const modelPath = required(param(args.model, "model", "P2P_MODEL"), "model");
      const games = intParam(required(param(args.games, "games"), "games"), "games", 0, 1);
      const out = required(param(args.out, "out", "P2P_OUTPUT_DIR"), "out");
      const options = {
        ...SELFPLAY_DEFAULTS,
        sims: intParam(param(args.sims, "sims"), "sims", SELFPLAY_DEFAULTS.sims, 1),
        sampledPlies: intParam(
          param(args["sampled-plies"], "sampled_plies"),
          "sampled-plies",
          SELFPLAY_DEFAULTS.sampledPlies,
        ),
      };
      const seed = seedOf(args.seed);
      const model = readModel(modelPath);
      ensureDir(out);
      const rng = new Rng(seed);
      const stop = new StopSignal();
      const progress = new Progress("selfplay");
      const lines: string[] = [];
      let positions = 0;
      let simulations = 0;
      const started = performance.now();
      for (let g = 0; g < games && !stop.requested; g++) {
        const record: GameRecord = { ...playSelfPlayGame(model.net, options, rng), model: model.sha256 };
        lines.push(JSON.stringify(record));
        positions += record.moves.length;
        simulations += record.moves.length * options.sims;
        progress.update(g + 1, games, `games, ${positions} positions`);
        await yieldToEvents();
      }
      progress.finish();
      stop.dispose();
      const seconds = (performance.now() - started) / 1000;
      const files: string[] = [];
      if (lines.length > 0) {
        const name = `games-${model.sha256.slice(0, 12)}-${seed}.jsonl`;
        writeFileAtomic(join(out, name), `${lines.join("\n")}\n`);
        files.push(name);
      }
      printResult({
        games: lines.length,
        positions,
        files,
        model: model.sha256,
        generation: model.header.generation,
        sims: options.sims,
        seconds: round(seconds),
        gamesPerMinute: round((lines.length * 60) / seconds),
        simsPerSecond: Math.round(simulations / seconds),
        ...(stop.requested ? { stopped: true } : {}),
      });
      if (stop.requested) process.exit(STOPPED_EXIT_CODE);
    }),
});

const trainCommand = defineCommand({
  meta: { name: "train", description: "Train a candidate model from recent games (--games may be repeated)" },
  args: {
    games: { type: "string", description: "Folder of game files, repeatable (default $P2P_GAMES_DIR)" },
    from: { type: "string", description: "Parent model file (default $P2P_MODEL)" },
    out: { type: "string", description: "Output folder (default $P2P_OUTPUT_DIR)" },
    steps: { type: "string", description: `Adam steps (default ${TRAIN_DEFAULTS.steps})` },
    batch: { type: "string", description: `Minibatch size (default ${TRAIN_DEFAULTS.batch})` },
    lr: { type: "string", description: `Learning rate (default ${TRAIN_DEFAULTS.learningRate})` },
    window: { type: "string", description: "Most recent games to train on (default 2000)" },
    ...seedArg,
  },
  run: ({ args, rawArgs }) =>
    runCommand(async () => {
      const dirs = repeated(rawArgs, "games");
      if (dirs.length === 0) dirs.push(required(param(undefined, "games_dir", "P2P_GAMES_DIR"), "games"));
      const parentPath = required(param(args.from, "from", "P2P_MODEL"), "from");
      const out = required(param(args.out, "out", "P2P_OUTPUT_DIR"), "out");
      const options = {
        steps: intParam(param(args.steps, "steps"), "steps", TRAIN_DEFAULTS.steps, 1),
        batch: intParam(param(args.batch, "batch"), "batch", TRAIN_DEFAULTS.batch, 1),
        learningRate: numberParam(param(args.lr, "lr"), "lr", TRAIN_DEFAULTS.learningRate),
      };
      const windowSize = intParam(param(args.window, "window"), "window", 2000, 1);
      const seed = seedOf(args.seed);
      for (const dir of dirs) if (!existsSync(dir)) throw new UsageError(`--games ${dir}: no such folder`);
      const parent = readModel(parentPath);
      const window = loadWindow(dirs, windowSize);
      if (window.games.length === 0) throw new UsageError(`no games found in ${dirs.join(", ")}`);
      const samples = buildSamples(window.games);
      const net = parent.net;
      const step = trainer(net, samples, options, new Rng(seed));
      const stop = new StopSignal();
      const progress = new Progress("train");
      // The reported losses are the mean over the last tenth of the steps (at least one).
      const tail = Math.max(1, Math.ceil(options.steps / 10));
      let policy = 0;
      let value = 0;
      const started = performance.now();
      for (let s = 0; s < options.steps; s++) {
        const losses = step();
        if (s >= options.steps - tail) {
          policy += losses.policy / tail;
          value += losses.value / tail;
        }
        if (s % 10 === 9 || s === options.steps - 1) {
          progress.update(s + 1, options.steps, `steps, loss ${losses.policy.toFixed(3)} / ${losses.value.toFixed(3)}`);
          await yieldToEvents();
          if (stop.requested) break;
        }
      }
      progress.finish();
      stop.dispose();
      if (stop.requested) {
        console.error("train: stopped, no model written");
        process.exit(STOPPED_EXIT_CODE);
      }
      const seconds = (performance.now() - started) / 1000;
      const loss = { policy: round(policy, 4), value: round(value, 4) };
      const header = {
        ...parent.header,
        generation: parent.header.generation + 1,
        parent: parent.sha256,
        seed,
        metrics: { policyLoss: loss.policy, valueLoss: loss.value, samples: samples.count, steps: options.steps },
      };
      const bytes = encodeModel(header, net);
      const id = sha256(bytes);
      const name = `gen${header.generation}-${id.slice(0, 12)}.model`;
      ensureDir(out);
      writeFileAtomic(join(out, name), bytes);
      printResult({
        model: name,
        path: join(out, name),
        sha256: id,
        generation: header.generation,
        parent: parent.sha256,
        samples: samples.count,
        games: window.games.length,
        skipped: window.skipped,
        steps: options.steps,
        loss,
        seconds: round(seconds),
        samplesPerSecond: Math.round((options.steps * options.batch) / seconds),
      });
    }),
});

const matchCommand = defineCommand({
  meta: { name: "match", description: "Play paired games (each opening with both colours) between two players" },
  args: {
    a: { type: "string", description: "Player A: model file, random or mcts:N (default $P2P_CANDIDATE)" },
    b: { type: "string", description: "Player B (default $P2P_OPPONENT)" },
    games: { type: "string", description: "Number of games, rounded up to pairs ($P2P_PARAM_GAMES, default 20)" },
    sims: { type: "string", description: "Simulations per move for model players (default 100)" },
    "opening-plies": { type: "string", description: "Random plies of each pair's opening (default 2)" },
    ...seedArg,
  },
  run: ({ args }) =>
    runCommand(async () => {
      const specA = required(param(args.a, "a", "P2P_CANDIDATE"), "a");
      const specB = required(param(args.b, "b", "P2P_OPPONENT"), "b");
      const games = intParam(param(args.games, "games"), "games", 20, 1);
      const sims = intParam(param(args.sims, "sims"), "sims", 100, 1);
      const openingPlies = intParam(param(args["opening-plies"], "opening_plies"), "opening-plies", 2);
      const seed = seedOf(args.seed);
      const a = makePlayer(specA, { sims, seed: seed ^ 0x5a5a5a5a });
      const b = makePlayer(specB, { sims, seed: seed ^ 0x3c3c3c3c });
      const rng = new Rng(seed);
      const pairs = Math.ceil(games / 2);
      const result = emptyResult();
      const stop = new StopSignal();
      const progress = new Progress(`match ${a.name} vs ${b.name}`);
      const betweenMoves = async (): Promise<void> => {
        await yieldToEvents();
        if (stop.requested) throw new Stopped();
      };
      const started = performance.now();
      try {
        for (let p = 0; p < pairs; p++) {
          const opening = randomOpening(openingPlies, rng);
          const asFirst = await playGame(a, b, opening, betweenMoves);
          const asSecond = -(await playGame(b, a, opening, betweenMoves));
          addPair(result, asFirst, asSecond);
          progress.update(p + 1, pairs, `pairs, +${result.wins} =${result.draws} -${result.losses}`);
        }
      } catch (e) {
        if (!(e instanceof Stopped)) throw e;
      }
      progress.finish();
      stop.dispose();
      const score = result.games > 0 ? (result.wins + result.draws / 2) / result.games : 0;
      printResult({
        ...result,
        score: round(score, 4),
        a: a.name,
        b: b.name,
        sims,
        seconds: round((performance.now() - started) / 1000),
        ...(stop.requested ? { stopped: true } : {}),
      });
      if (stop.requested) process.exit(STOPPED_EXIT_CODE);
    }),
});

class Stopped extends Error {}

const analyzeCommand = defineCommand({
  meta: { name: "analyze", description: "Show a model's policy and value for a position, and its search with --sims" },
  args: {
    model: { type: "string", description: "Model file (default $P2P_MODEL)" },
    moves: { type: "string", description: 'The position as played columns 1-7, e.g. "4453" (default: start)' },
    sims: { type: "string", description: "Run a search with this many simulations" },
    ...seedArg,
  },
  run: ({ args }) =>
    runCommand(() => {
      const model = readModel(required(param(args.model, "model", "P2P_MODEL"), "model"));
      const moves = param(args.moves, "moves") ?? "";
      let position: Position;
      try {
        position = Position.fromNotation(moves);
      } catch (e) {
        throw new UsageError(`--moves: ${e instanceof Error ? e.message : String(e)}`);
      }
      const base = { moves, model: model.sha256, generation: model.header.generation };
      if (position.isOver) {
        printResult({ ...base, over: true, outcome: position.outcome });
        return;
      }
      const evaluator = netEvaluator(model.net);
      const { priors, value } = evaluator.evaluate(position);
      const result: Record<string, unknown> = {
        ...base,
        toMove: position.toMove === 0 ? "first" : "second",
        policy: Array.from(priors, (p) => round(p, 4)),
        value: round(value, 4),
      };
      const sims = param(args.sims, "sims");
      if (sims !== undefined) {
        const rng = new Rng(seedOf(args.seed));
        const search = new Search(evaluator, position, { simulations: intParam(sims, "sims", 0, 1) }, rng);
        const visits = search.run();
        result.search = {
          sims: Number(sims),
          visits: Array.from(visits),
          q: search.rootValues().map((q) => (Number.isNaN(q) ? null : round(q, 4))),
          move: chooseMove(visits, 0, rng) + 1,
        };
      }
      printResult(result);
    }),
});

const playCommand = defineCommand({
  meta: { name: "play", description: "Play against a model in the terminal (columns 1-7)" },
  args: {
    model: { type: "string", description: "Model file, or random / mcts:N", required: true },
    sims: { type: "string", description: "Simulations per move for a model (default 200)" },
    first: { type: "string", description: "Who moves first: you or model (default you)" },
    moves: { type: "string", description: "Start from this position" },
    ...seedArg,
  },
  run: ({ args }) =>
    runCommand(async () => {
      const opponent = makePlayer(args.model, {
        sims: intParam(args.sims, "sims", 200, 1),
        seed: seedOf(args.seed),
      });
      const position = Position.fromNotation(args.moves ?? "");
      const humanSide = (args.first ?? "you") === "model" ? 1 : 0;
      opponent.reset(position);
      const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
      while (!position.isOver) {
        let move: number;
        if (position.toMove === humanSide) {
          console.error(`${position.render()}\nyour move (1-7, q to quit):`);
          const next = await lines.next();
          const text = next.done ? "q" : String(next.value).trim();
          if (text === "q") break;
          move = Number(text) - 1;
          if (!position.canPlay(move)) {
            console.error(`"${text}" is not a playable column`);
            continue;
          }
        } else {
          move = opponent.chooseMove(position);
          console.error(`model plays ${move + 1}`);
        }
        position.play(move);
        opponent.observe(move);
      }
      console.error(position.render());
      const outcome = position.outcome;
      const you = outcome === undefined || outcome === "draw" ? outcome : (outcome === "first") === (humanSide === 0);
      printResult({
        moves: position.notation(),
        outcome: outcome ?? "unfinished",
        ...(typeof you === "boolean" ? { youWon: you } : {}),
      });
      process.exit(0);
    }),
});

function hiddenLayers(flag: string | undefined): number[] {
  if (flag === undefined) return DEFAULT_ARCHITECTURE.hidden;
  const sizes = flag.split(",").map((size) => intParam(size.trim(), "hidden", 0, 1));
  if (sizes.length === 0 || sizes.length > 8 || sizes.some((n) => n > 4096)) {
    throw new UsageError("--hidden takes 1 to 8 sizes of at most 4096, e.g. 128,128");
  }
  return sizes;
}

/** Every value of a repeatable flag (--name v or --name=v). */
function repeated(rawArgs: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i] as string;
    if (arg === `--${name}` && i + 1 < rawArgs.length) values.push(rawArgs[++i] as string);
    else if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
  }
  return values;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export const demoCommand = defineCommand({
  meta: { name: "demo", description: "Connect Four AlphaZero workload: self-play, training, matches, analysis, play" },
  subCommands: {
    init: initCommand,
    selfplay: selfplayCommand,
    train: trainCommand,
    match: matchCommand,
    analyze: analyzeCommand,
    play: playCommand,
  },
});
