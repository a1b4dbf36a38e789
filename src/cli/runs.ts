import { defineCommand } from "citty";
import type { Client, ResponseOf } from "../client/client.ts";
import type { EvaluationView, ModelView } from "../runs/views.ts";
import { tellRuns } from "./run-feed.ts";
import { formatAge, table } from "./table.ts";
import { connect, fail, targetArgs } from "./target.ts";

/** Training runs from the command line: their state and why they wait, models, Elo, and the operator's actions. */

const short = (id: string | null | undefined) => (id ? (/^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : id) : "-");
const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(0)}`;
const runArg = { run: { type: "positional", required: true, description: "The run's name" } } as const;
/** The training's losses as its job reported them (metrics are the job's own JSON). */
function lossOf(m: ModelView): string {
  const loss = (m.metrics as { loss?: { policy?: number; value?: number } } | null)?.loss;
  return loss ? `${loss.policy?.toFixed(3) ?? "-"} / ${loss.value?.toFixed(3) ?? "-"}` : "-";
}

const reasonArg = { reason: { type: "string", description: "Why (kept in the run's history)" } } as const;

/** A model of the run by its id or a unique prefix of it (as `models` prints them). */
async function resolveModel(target: Client, run: string, prefix: string): Promise<string> {
  const { models } = await target.call("runModels", { params: { name: run } });
  const found = models.filter((m) => m.id.startsWith(prefix.toLowerCase()));
  if (found.length === 1) return (found[0] as ModelView).id;
  throw new Error(
    found.length === 0
      ? `run "${run}" has no model ${prefix}`
      : `${prefix} names ${found.length} models: give more digits`,
  );
}

async function printRun(target: Client, name: string): Promise<void> {
  const run = await target.call("run", { params: { name } });
  const { context: c } = run;
  console.log(`${name}: ${run.stage}${c.paused ? " (paused)" : ""}: ${run.why ?? ""}`);
  console.log(`best: ${c.best ? `generation ${c.best.generation} (${short(c.best.id)})` : "-"}`);
  if (c.candidate) console.log(`candidate: generation ${c.candidate.generation} (${short(c.candidate.id)})`);
  if (run.sprt) {
    const s = run.sprt;
    console.log(
      `gate: LLR ${s.llr.toFixed(2)} in (${s.lower.toFixed(2)}, ${s.upper.toFixed(2)}), ${s.games} of at most ${s.maxGames} games, pairs [${s.pairs.join(" ")}]`,
    );
  }
  if (c.lastDecision) {
    const d = c.lastDecision;
    console.log(
      `last decision: generation ${d.generation} ${d.verdict} (${d.cause}; ${d.evidence.games ?? "-"} games)`,
    );
  }
  console.log(
    `models: ${
      Object.entries(run.models)
        .map(([s, n]) => `${n} ${s}`)
        .join(", ") || "none"
    }`,
  );
  console.log("");
  const now = Date.now();
  for (const h of run.history.slice(-15)) {
    console.log(
      `${formatAge(now - h.at).padStart(7)} ago  ${(h.from ?? "(new)").padEnd(13)} -> ${h.to.padEnd(13)} ${h.event.padEnd(12)} ${h.cause ?? ""}`,
    );
  }
}

export const runsCommand = defineCommand({
  meta: {
    name: "runs",
    description: "Training runs: stage and why they wait; `runs <name>` for one, --follow to watch it",
  },
  args: {
    ...targetArgs,
    run: { type: "positional", required: false, description: "One run's details" },
    follow: { type: "boolean", description: "Print the run's events as they happen (Ctrl-C stops)", default: false },
  },
  async run({ args }) {
    try {
      const target = connect(args);
      if (args.follow) {
        await tellRuns(
          target,
          (line) => console.log(line),
          () => false,
          args.run,
        );
        return;
      }
      if (args.run) {
        if (args.json)
          return console.log(JSON.stringify(await target.call("run", { params: { name: args.run } }), null, 2));
        return await printRun(target, args.run);
      }
      const { runs } = await target.call("runs");
      if (args.json) return console.log(JSON.stringify(runs, null, 2));
      console.log(
        table(
          ["RUN", "STAGE", "BEST", "CANDIDATE", "NEW GAMES", "WHY"],
          runs.map((r) => [
            r.name,
            r.paused ? `${r.stage} (paused)` : r.stage,
            r.best ? `g${r.best.generation} ${short(r.best.id)}` : "-",
            r.candidate ? `g${r.candidate.generation} ${short(r.candidate.id)}` : "-",
            r.newGames,
            r.why ?? "",
          ]),
        ),
      );
    } catch (e) {
      fail(e);
    }
  },
});

export const modelsCommand = defineCommand({
  meta: { name: "models", description: "A run's models: generation, state, parent, losses" },
  args: { ...targetArgs, ...runArg },
  async run({ args }) {
    try {
      const { models } = await connect(args).call("runModels", { params: { name: args.run } });
      if (args.json) return console.log(JSON.stringify(models, null, 2));
      const now = Date.now();
      console.log(
        table(
          ["GEN", "ID", "STATE", "PARENT", "NODE", "LOSS (POLICY/VALUE)", "CREATED"],
          models.map((m) => [
            m.generation,
            short(m.id),
            m.state,
            short(m.parent),
            m.node ?? "-",
            lossOf(m),
            `${formatAge(now - m.createdAt)} ago`,
          ]),
        ),
      );
    } catch (e) {
      fail(e);
    }
  },
});

export const eloCommand = defineCommand({
  meta: { name: "elo", description: "A run's Elo table: generation 0 at 0, baselines in the same fit, 95% intervals" },
  args: { ...targetArgs, ...runArg },
  async run({ args }) {
    try {
      const elo = await connect(args).call("runElo", { params: { name: args.run } });
      if (args.json) return console.log(JSON.stringify(elo, null, 2));
      console.log(
        table(
          ["#", "PLAYER", "STATE", "ELO", "95%", "GAMES", "P(> BEST)"],
          elo.ratings.map((r, i) => [
            i + 1,
            r.generation === null ? r.id : `g${r.generation} ${short(r.id)}${r.id === elo.best ? " (best)" : ""}`,
            r.state,
            signed(r.elo),
            `${signed(r.low)} .. ${signed(r.high)}`,
            r.games,
            r.pStronger === undefined || r.id === elo.best ? "-" : `${(100 * r.pStronger).toFixed(0)}%`,
          ]),
        ),
      );
    } catch (e) {
      fail(e);
    }
  },
});

/** One operator action on a run: its outcome in a line, or the run as JSON. */
function action(
  name: string,
  description: string,
  act: (target: Client, args: Record<string, unknown>) => Promise<ResponseOf<"runPause">>,
) {
  return defineCommand({
    meta: { name, description },
    args: {
      ...targetArgs,
      ...runArg,
      ...reasonArg,
      model: { type: "positional", required: name === "promote", description: "Model id or prefix" },
    },
    async run({ args }) {
      try {
        const target = connect(args);
        const answer = await act(target, args);
        if (args.json) return console.log(JSON.stringify(answer, null, 2));
        const best = answer.run.context.best;
        console.log(
          `${args.run}: ${answer.run.stage}${answer.run.context.paused ? " (paused)" : ""}, best generation ${best?.generation ?? "-"} (${short(best?.id)})`,
        );
      } catch (e) {
        fail(e);
      }
    },
  });
}

const body = (args: Record<string, unknown>) => (typeof args.reason === "string" ? { reason: args.reason } : {});
export const pauseCommand = action("pause", "Pause a run: no new self-play, training or gating", (t, a) =>
  t.call("runPause", { params: { name: String(a.run) }, body: body(a) }),
);
export const resumeCommand = action("resume", "Resume a paused run", (t, a) =>
  t.call("runResume", { params: { name: String(a.run) }, body: body(a) }),
);
export const promoteCommand = action(
  "promote",
  "Make a model the run's best (a generation in flight is abandoned)",
  async (t, a) => {
    const model = await resolveModel(t, String(a.run), String(a.model));
    return t.call("runPromote", { params: { name: String(a.run) }, body: { model, ...body(a) } });
  },
);
export const rollbackCommand = action("rollback", "Back to the promoted model before the current best", (t, a) =>
  t.call("runRollback", { params: { name: String(a.run) }, body: body(a) }),
);

function printEvaluations(list: EvaluationView[]): void {
  const now = Date.now();
  for (const e of list) {
    const head = `${e.id}  ${e.state}  ${formatAge(now - e.createdAt)} ago  ${e.players.map(short).join(" vs ")}`;
    if (e.kind === "abtest") {
      const o = e.outcome as { verdict?: string; llr?: number; games?: number } | null;
      console.log(
        `${head}  pairs [${(e.results.pairs ?? []).join(" ")}]${o?.verdict ? `  ${o.verdict} (LLR ${o.llr?.toFixed(2)}, ${o.games} games)` : ""}`,
      );
    } else {
      console.log(head);
      for (const s of e.standings ?? [])
        console.log(
          `    ${short(s.player).padEnd(14)} ${s.points}/${s.games}${s.score === null ? "" : `  ${(100 * s.score).toFixed(1)}%`}`,
        );
    }
  }
}

export const abtestCommand = defineCommand({
  meta: {
    name: "abtest",
    description: "A/B test two models of a run (the gate's sequential test); without models, list them",
  },
  args: {
    ...targetArgs,
    ...runArg,
    a: { type: "positional", required: false, description: "Model A (id or prefix)" },
    b: { type: "positional", required: false, description: "Model B (id or prefix)" },
    elo0: { type: "string", description: "H0 Elo (default 0)" },
    elo1: { type: "string", description: "H1 Elo (default 50)" },
    "max-games": { type: "string", description: "Stop undecided after this many games (default 400)" },
  },
  async run({ args }) {
    try {
      const target = connect(args);
      if (!args.a || !args.b) {
        const { abtests } = await target.call("runAbtests", { params: { name: args.run } });
        return args.json ? console.log(JSON.stringify(abtests, null, 2)) : printEvaluations(abtests);
      }
      const params = Object.fromEntries(
        [
          ["elo0", args.elo0],
          ["elo1", args.elo1],
          ["max_games", args["max-games"]],
        ]
          .filter(([, x]) => x !== undefined)
          .map(([k, x]) => [k, Number(x)]),
      );
      const started = await target.call("runAbtestStart", {
        params: { name: args.run },
        body: {
          a: await resolveModel(target, args.run, args.a),
          b: await resolveModel(target, args.run, args.b),
          params,
        },
      });
      console.log(
        args.json ? JSON.stringify(started, null, 2) : `started A/B test ${started.id}: abtest ${args.run} lists it`,
      );
    } catch (e) {
      fail(e);
    }
  },
});

export const tournamentCommand = defineCommand({
  meta: {
    name: "tournament",
    description: "Round robin among models (and baselines) of a run; without --players, list them",
  },
  args: {
    ...targetArgs,
    ...runArg,
    players: { type: "string", description: "Comma-separated model ids or prefixes, and baselines (random, mcts:200)" },
    games: { type: "string", description: "Games per pairing (default 40)" },
  },
  async run({ args }) {
    try {
      const target = connect(args);
      if (!args.players) {
        const { tournaments } = await target.call("runTournaments", { params: { name: args.run } });
        return args.json ? console.log(JSON.stringify(tournaments, null, 2)) : printEvaluations(tournaments);
      }
      const players = await Promise.all(
        args.players
          .split(",")
          .map((p) => (/^(random|mcts:\d+)$/.test(p.trim()) ? p.trim() : resolveModel(target, args.run, p.trim()))),
      );
      const params = args.games ? { games_per_pair: Number(args.games) } : {};
      const started = await target.call("runTournamentStart", {
        params: { name: args.run },
        body: { players, params },
      });
      console.log(
        args.json
          ? JSON.stringify(started, null, 2)
          : `started tournament ${started.id}: tournament ${args.run} lists it`,
      );
    } catch (e) {
      fail(e);
    }
  },
});
