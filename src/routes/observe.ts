import type { Elysia } from "elysia";
import type { TraceStore } from "../db/traces.ts";
import { ROUTES } from "../net/route-table.ts";
import type { NodeStatus } from "../node/status.ts";
import type { Metrics } from "../observability/metrics.ts";
import { serve } from "./define.ts";

/** What an operator reads: status from memory, Prometheus metrics, state-machine traces. */
export function observeRoutes(
  app: Elysia,
  deps: { status: () => NodeStatus; metrics: Metrics; traces: TraceStore },
): void {
  serve(app, ROUTES.status, () => deps.status());
  serve(
    app,
    ROUTES.metrics,
    () => new Response(deps.metrics.render(), { headers: { "content-type": "text/plain; version=0.0.4" } }),
  );
  serve(app, ROUTES.traces, ({ query }) => ({ traces: deps.traces.query(query) }));
}
