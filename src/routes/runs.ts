import type { Elysia } from "elysia";
import { NotLeaderError } from "../consensus/raft.ts";
import { WriteFailedError } from "../consensus/runtime.ts";
import { errorResponse, writeFailedResponse } from "../net/errors.ts";
import { ROUTES } from "../net/route-table.ts";
import { RunError, type RunService } from "../runs/service.ts";
import type { LeaderHint } from "./consensus.ts";
import { serve } from "./define.ts";

/** Training runs: their state and why they wait, models, Elo and history; pause, resume, promote, roll back. */
export function runRoutes(
  app: Elysia,
  deps: { runs: RunService; leaderHint: () => LeaderHint | null; holdsState: () => boolean },
): void {
  const { runs } = deps;
  /** A node that is not a voter holds no replicated state: it names the leader (421), whom clients then ask. */
  const elsewhere = () => {
    const hint = deps.leaderHint();
    const message = "this node is not a voter and holds no replicated state: ask the leader";
    return errorResponse(421, "not_a_voter", message, {
      leader: hint ? { id: hint.id, address: hint.address } : null,
    });
  };
  const fail = (e: unknown): Response => {
    if (e instanceof RunError) {
      const code = { 404: "no_such_run", 409: "refused", 422: "rejected" } as const;
      return errorResponse(e.status, e.code ?? code[e.status], e.message, e.field ? { field: e.field } : {});
    }
    if (e instanceof NotLeaderError) {
      const hint = deps.leaderHint();
      return errorResponse(421, "not_leader", e.message, {
        leader: hint ? { id: hint.id, address: hint.address } : null,
      });
    }
    if (e instanceof WriteFailedError) return writeFailedResponse(e.message);
    throw e;
  };
  const guarded =
    <T>(f: () => T | Promise<T>) =>
    async () => {
      if (!deps.holdsState()) return elsewhere();
      try {
        return await f();
      } catch (e) {
        return fail(e);
      }
    };
  const name = (params: Record<string, string>) => params.name as string;
  serve(app, ROUTES.runs, () => guarded(() => ({ runs: runs.list() }))());
  serve(app, ROUTES.run, ({ params }) => guarded(() => runs.get(name(params)))());
  serve(app, ROUTES.runModels, ({ params }) => guarded(() => ({ models: runs.models(name(params)) }))());
  serve(app, ROUTES.runElo, ({ params }) => guarded(() => runs.elo(name(params)))());
  serve(app, ROUTES.runAnalytics, ({ params }) => guarded(() => runs.analytics(name(params)))());
  serve(app, ROUTES.runHistory, ({ params, query }) =>
    guarded(() => ({ history: runs.history(name(params), query.limit ?? 200) }))(),
  );
  const reason = (body: { reason?: string }) => body.reason ?? "by an operator";
  serve(app, ROUTES.runAbtests, ({ params }) =>
    guarded(() => ({ abtests: runs.evaluations(name(params), "abtest") }))(),
  );
  serve(app, ROUTES.runAbtestStart, ({ params, body }) => guarded(() => runs.abtest(name(params), body))());
  serve(app, ROUTES.runTournaments, ({ params }) =>
    guarded(() => ({ tournaments: runs.evaluations(name(params), "tournament") }))(),
  );
  serve(app, ROUTES.runTournamentStart, ({ params, body }) => guarded(() => runs.tournament(name(params), body))());
  serve(app, ROUTES.evaluationCancel, ({ params, body }) =>
    guarded(() => runs.cancelEvaluation(params.id as string, reason(body)))(),
  );
  serve(app, ROUTES.runPause, ({ params, body }) => guarded(() => runs.pause(name(params), reason(body)))());
  serve(app, ROUTES.runResume, ({ params, body }) => guarded(() => runs.resume(name(params), reason(body)))());
  serve(app, ROUTES.runPromote, ({ params, body }) =>
    guarded(() => runs.promote(name(params), body.model, reason(body)))(),
  );
  serve(app, ROUTES.runRollback, ({ params, body }) => guarded(() => runs.rollback(name(params), reason(body)))());
}
