import type { Elysia } from "elysia";
import { ROUTES } from "../net/route-table.ts";
import type { RunningJob } from "../work/views.ts";
import { serve } from "./define.ts";

/** Operator actions on this node. */
export function adminRoutes(
  app: Elysia,
  deps: { leave: (reason: string) => void; drain: () => void; jobs: () => RunningJob[] },
): void {
  serve(app, ROUTES.leave, ({ body }) => {
    deps.leave(body.reason ?? "operator request");
    return { leaving: true };
  });
  serve(app, ROUTES.drain, () => {
    deps.drain();
    return { draining: true, running: deps.jobs().length };
  });
  serve(app, ROUTES.jobs, () => ({ jobs: deps.jobs() }));
}
