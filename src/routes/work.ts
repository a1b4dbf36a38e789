import type { Elysia } from "elysia";
import type { LeaderHint } from "../consensus/hints.ts";
import { VERIFIED_PEER_HEADER } from "../net/gate.ts";
import { ROUTES } from "../net/route-table.ts";
import type { ReportOutcome } from "../work/commands.ts";
import type { WorkService } from "../work/service.ts";
import { serve } from "./define.ts";
import { RouteRefusal } from "./errors.ts";

/** The work queue's HTTP surface: operators submit and inspect; workers claim and report, signed. */
export function workRoutes(app: Elysia, deps: { work: WorkService; leaderHint: () => LeaderHint | null }): void {
  const { work } = deps;
  const errors = { leaderHint: deps.leaderHint };
  const outcome = (o: ReportOutcome) => {
    if (!o.ok) throw new RouteRefusal(o.status, o.status === 409 ? "stale_lease" : "no_such_item", o.reason);
    return { state: o.state, duplicate: o.duplicate };
  };

  serve(
    app,
    ROUTES.workAdd,
    async ({ body }) => {
      const { added, existing, queued } = await work.submit([body]);
      const id = (added[0] ?? existing[0]) as string;
      return { id, existing: existing.length > 0, item: work.get(id), queued };
    },
    errors,
  );
  serve(app, ROUTES.workBatch, ({ body }) => work.submit(body.items), {
    ...errors,
    refusedAt: (i) => `body.items[${i.index}].${i.field}`,
  });
  serve(app, ROUTES.workList, ({ query }) => ({
    items: work.list({ state: query.state, type: query.type, limit: query.limit ?? 100 }),
  }));
  serve(app, ROUTES.workStatus, () => work.status());
  serve(app, ROUTES.workPopulator, () => ({ wanted: [], note: "filled in by the training loop's controllers" }));
  serve(app, ROUTES.workHistory, ({ query }) => ({
    history: work.history({ itemId: query.item, since: query.since, limit: query.limit ?? 200 }),
  }));
  serve(app, ROUTES.workNode, ({ params }) => ({ node: params.id, items: work.ofNode(params.id) }));
  serve(app, ROUTES.workGet, ({ params }) => work.get(params.id), errors);
  serve(
    app,
    ROUTES.workCancel,
    async ({ params, body }) => outcome(await work.cancel(params.id, body.reason ?? "cancelled by an operator")),
    errors,
  );

  serve(
    app,
    ROUTES.peerWorkClaim,
    async ({ body, request }) => {
      if (body.offer.node !== request.headers.get(VERIFIED_PEER_HEADER)) {
        throw new RouteRefusal(403, "forbidden", "a node can only claim for itself");
      }
      return { claims: await work.claim(body.offer, body.max, body.claimId, body.retry) };
    },
    errors,
  );
  const reports = [
    [ROUTES.peerWorkStart, "start"],
    [ROUTES.peerWorkHeartbeat, "heartbeat"],
    [ROUTES.peerWorkComplete, "complete"],
    [ROUTES.peerWorkFail, "fail"],
  ] as const;
  for (const [spec, kind] of reports) {
    serve(
      app,
      spec,
      async ({ params, body, request }) => {
        const node = request.headers.get(VERIFIED_PEER_HEADER) as string;
        return outcome(await work.report(params.id, kind, { ...body, node }));
      },
      errors,
    );
  }
}
