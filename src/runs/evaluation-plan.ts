import type { Pentanomial } from "../machines/run-loop.ts";
import type { AbtestParams, EvaluationRow, Games, TournamentParams } from "./evaluation-state.ts";
import { pairings } from "./evaluation-state.ts";
import { item, type OpenItem, type PlanInput, type PlannedStep, PRIORITY } from "./plan.ts";
import type { RunPolicy } from "./policy.ts";
import { sequentialTest } from "./sequential.ts";

/**
 * The leader's decisions for A/B tests and tournaments on one tick, pure like `planRuns`: keep match items
 * queued while games are wanted, end an A/B test when its sequential test decides (or its games run out) and a
 * tournament when every pairing has its games, cancelling what is left. (An operator's cancel ends it and its open
 * items in one step of its own.)
 */

export interface EvaluationView {
  row: EvaluationRow;
  policy: RunPolicy;
  open: readonly OpenItem[];
}

type EvalStep = Extract<PlannedStep, { command: "eval.step" }>;

export function planEvaluations(views: readonly EvaluationView[], input: PlanInput): EvalStep[] {
  return views.flatMap((view) => (view.row.kind === "abtest" ? planAbtest(view, input) : planTournament(view, input)));
}

function step(view: EvaluationView, input: PlanInput, cause: string, rest: Partial<EvalStep["payload"]>): EvalStep {
  return { command: "eval.step", payload: { id: view.row.id, add: [], cancel: [], cause, now: input.now, ...rest } };
}

function matchItem(view: EvaluationView, input: PlanInput, a: string, b: string, games: number) {
  const { row, policy } = view;
  return item(input, `${row.run}.${row.kind}.${row.id}.${input.newId()}`, policy.match, PRIORITY.evaluation, {
    ...policy.params.match,
    run: row.run,
    stage: "match",
    generation: 0,
    seed: input.seed(),
    candidate: a,
    opponent: b,
    gate: false,
    eval: row.id,
    games,
  });
}

function planAbtest(view: EvaluationView, input: PlanInput): EvalStep[] {
  const params = view.row.params as AbtestParams;
  const pairs = (view.row.results.pairs ?? [0, 0, 0, 0, 0]) as Pentanomial;
  const [a, b] = view.row.players as [string, string];
  const test = sequentialTest(pairs, params, view.open.length, input.slots(view.policy.match));
  if (test.done) {
    const { decision, llr } = test.state;
    const verdict = decision === "accept" ? "a is stronger" : decision === "reject" ? "a is not stronger" : "undecided";
    const outcome = { verdict, ...test.evidence };
    const cause = `A/B test ${view.row.id}: ${verdict} after ${test.games} games (LLR ${llr.toFixed(2)})`;
    return [step(view, input, cause, { end: { state: "done", outcome }, cancel: view.open.map((i) => i.id) })];
  }
  if (test.add <= 0) return [];
  // Each item plays its pairs with a as the first player; colours alternate inside every pair.
  const items = Array.from({ length: test.add }, () => matchItem(view, input, a, b, test.gamesPerItem));
  return [step(view, input, `A/B test ${view.row.id}: ${test.add} match items`, { add: items })];
}

function planTournament(view: EvaluationView, input: PlanInput): EvalStep[] {
  const params = view.row.params as TournamentParams;
  const played = view.row.results.games ?? {};
  const perItem = 2 * params.pairs_per_item;
  const room = Math.max(2, input.slots(view.policy.match)) - view.open.length;
  const add: ReturnType<typeof matchItem>[] = [];
  let complete = true;
  for (const [a, b] of pairings(view.row.players)) {
    const done = total(played[`${a} ${b}`]);
    const inFlight = view.open
      .filter((i) => i.config.candidate === a && i.config.opponent === b)
      .reduce((n, i) => n + Number(i.config.games ?? 0), 0);
    if (done < params.games_per_pair) complete = false;
    for (let left = params.games_per_pair - done - inFlight; left > 0 && add.length < room; left -= perItem) {
      add.push(matchItem(view, input, a, b, Math.min(perItem, left)));
    }
  }
  if (complete) {
    const outcome = { standings: standings(view.row.players, played) };
    return [step(view, input, `tournament ${view.row.id}: every pairing played`, { end: { state: "done", outcome } })];
  }
  return add.length > 0 ? [step(view, input, `tournament ${view.row.id}: ${add.length} match items`, { add })] : [];
}

const total = (g: Games | undefined) => (g ? g.wins + g.draws + g.losses : 0);

/** Each player's score over its games in the tournament, best first. */
export function standings(players: readonly string[], played: Record<string, Games>) {
  return players
    .map((player) => {
      let points = 0;
      let games = 0;
      for (const [key, g] of Object.entries(played)) {
        const [a, b] = key.split(" ");
        if (a === player) points += g.wins + g.draws / 2;
        else if (b === player) points += g.losses + g.draws / 2;
        else continue;
        games += total(g);
      }
      return { player, points, games, score: games > 0 ? points / games : null };
    })
    .sort((x, y) => (y.score ?? -1) - (x.score ?? -1));
}
