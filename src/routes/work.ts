import type { Elysia } from "elysia";
import { NotLeaderError } from "../consensus/raft.ts";
import { WriteFailedError } from "../consensus/runtime.ts";
import { errorResponse, writeFailedResponse } from "../net/errors.ts";
import { VERIFIED_PEER_HEADER } from "../net/gate.ts";
import { ROUTES } from "../net/route-table.ts";
import type { ReportOutcome } from "../work/commands.ts";
import { type RefusedField, WorkError, type WorkService } from "../work/service.ts";
import type { LeaderHint } from "./consensus.ts";
import { serve } from "./define.ts";

/** The work queue's HTTP surface: operators submit and inspect; workers claim and report, signed. */
export function workRoutes(app: Elysia, deps: { work: WorkService; leaderHint: () => LeaderHint | null }): void {
  const { work } = deps;
  /** `where` places a refused item's field in the request body (a batch's items are in `items`). */
  const fail = (e: unknown, where: (item: RefusedField) => string = (i) => `body.${i.field}`): Response => {
    if (e instanceof NotLeaderError) {
      const hint = deps.leaderHint();
      return errorResponse(421, "not_leader", e.message, {
        leader: hint ? { id: hint.id, address: hint.address } : null,
      });
    }
    if (e instanceof WorkError) {
      const codes = { 404: "no_such_item", 409: "id_conflict", 422: "rejected", 429: "backpressure" } as const;
      const { item, retryAfterS } = e.about;
      const response = errorResponse(e.status, codes[e.status], e.message, item ? { field: where(item) } : {});
      if (retryAfterS) response.headers.set("retry-after", String(retryAfterS));
      return response;
    }
    if (e instanceof WriteFailedError) return writeFailedResponse(e.message);
    return errorResponse(422, "rejected", (e as Error).message, { field: "body" });
  };
  const outcome = (o: ReportOutcome) =>
    o.ok
      ? { state: o.state, duplicate: o.duplicate }
      : errorResponse(o.status, o.status === 409 ? "stale_lease" : "no_such_item", o.reason);

  serve(app, ROUTES.workAdd, async ({ body }) => {
    try {
      const { added, existing, queued } = await work.submit([body]);
      const id = (added[0] ?? existing[0]) as string;
      return { id, existing: existing.length > 0, item: work.get(id), queued };
    } catch (e) {
      return fail(e);
    }
  });
  serve(app, ROUTES.workBatch, async ({ body }) => {
    try {
      return await work.submit(body.items);
    } catch (e) {
      return fail(e, (i) => `body.items[${i.index}].${i.field}`);
    }
  });
  serve(app, ROUTES.workList, ({ query }) => ({
    items: work.list({ state: query.state, type: query.type, limit: query.limit ?? 100 }),
  }));
  serve(app, ROUTES.workStatus, () => work.status());
  serve(app, ROUTES.workPopulator, () => ({ wanted: [], note: "filled in by the training loop's controllers" }));
  serve(app, ROUTES.workHistory, ({ query }) => ({
    history: work.history({ itemId: query.item, since: query.since, limit: query.limit ?? 200 }),
  }));
  serve(app, ROUTES.workNode, ({ params }) => ({ node: params.id, items: work.ofNode(params.id as string) }));
  serve(app, ROUTES.workGet, ({ params }) => {
    try {
      return work.get(params.id as string);
    } catch (e) {
      return fail(e);
    }
  });
  serve(app, ROUTES.workCancel, async ({ params, body }) => {
    try {
      return outcome(await work.cancel(params.id as string, body.reason ?? "cancelled by an operator"));
    } catch (e) {
      return fail(e);
    }
  });

  serve(app, ROUTES.peerWorkClaim, async ({ body, request }) => {
    if (body.offer.node !== request.headers.get(VERIFIED_PEER_HEADER)) {
      return errorResponse(403, "forbidden", "a node can only claim for itself");
    }
    try {
      return { claims: await work.claim(body.offer, body.max, body.claimId, body.retry) };
    } catch (e) {
      return fail(e);
    }
  });
  const reports = [
    [ROUTES.peerWorkStart, "start"],
    [ROUTES.peerWorkHeartbeat, "heartbeat"],
    [ROUTES.peerWorkComplete, "complete"],
    [ROUTES.peerWorkFail, "fail"],
  ] as const;
  for (const [spec, kind] of reports) {
    serve(app, spec, async ({ params, body, request }) => {
      try {
        const node = request.headers.get(VERIFIED_PEER_HEADER) as string;
        return outcome(await work.report(params.id as string, kind, { ...body, node }));
      } catch (e) {
        return fail(e);
      }
    });
  }
}
