import type { Elysia } from "elysia";
import type { LeaderHint } from "../consensus/hints.ts";
import { ROUTES } from "../net/route-table.ts";
import type { RunService } from "../runs/service.ts";
import { serve } from "./define.ts";
import { NotAVoterError } from "./errors.ts";

/** Training runs: their state and why they wait, models, Elo and history; pause, resume, promote, roll back. */
export function runRoutes(
  app: Elysia,
  deps: { runs: RunService; leaderHint: () => LeaderHint | null; holdsState: () => boolean },
): void {
  const { runs } = deps;
  const errors = { leaderHint: deps.leaderHint };
  /** Runs are replicated state: only a voter holds them. */
  const voter = () => {
    if (!deps.holdsState()) throw new NotAVoterError();
    return runs;
  };
  /** An evaluation just written is there to read back; its absence is a bug, not the client's error. */
  const written = <T>(row: T | undefined): T => {
    if (row === undefined) throw new Error("an evaluation written a moment ago cannot be read back");
    return row;
  };
  const reason = (body: { reason?: string }) => body.reason ?? "by an operator";

  serve(app, ROUTES.runs, () => ({ runs: voter().list() }), errors);
  serve(app, ROUTES.run, ({ params }) => voter().get(params.name), errors);
  serve(app, ROUTES.runModels, ({ params }) => ({ models: voter().models(params.name) }), errors);
  serve(app, ROUTES.runElo, ({ params }) => voter().elo(params.name), errors);
  serve(app, ROUTES.runAnalytics, ({ params }) => voter().analytics(params.name), errors);
  serve(
    app,
    ROUTES.runHistory,
    ({ params, query }) => ({ history: voter().history(params.name, query.limit ?? 200) }),
    errors,
  );
  serve(app, ROUTES.runAbtests, ({ params }) => ({ abtests: voter().evaluations(params.name, "abtest") }), errors);
  serve(
    app,
    ROUTES.runAbtestStart,
    async ({ params, body }) => written(await voter().abtest(params.name, body)),
    errors,
  );
  serve(
    app,
    ROUTES.runTournaments,
    ({ params }) => ({ tournaments: voter().evaluations(params.name, "tournament") }),
    errors,
  );
  serve(
    app,
    ROUTES.runTournamentStart,
    async ({ params, body }) => written(await voter().tournament(params.name, body)),
    errors,
  );
  serve(
    app,
    ROUTES.evaluationCancel,
    async ({ params, body }) => written(await voter().cancelEvaluation(params.id, reason(body))),
    errors,
  );
  serve(app, ROUTES.runPause, ({ params, body }) => voter().pause(params.name, reason(body)), errors);
  serve(app, ROUTES.runResume, ({ params, body }) => voter().resume(params.name, reason(body)), errors);
  serve(app, ROUTES.runPromote, ({ params, body }) => voter().promote(params.name, body.model, reason(body)), errors);
  serve(app, ROUTES.runRollback, ({ params, body }) => voter().rollback(params.name, reason(body)), errors);
}
