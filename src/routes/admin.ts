import type { Elysia } from "elysia";
import { ROUTES } from "../net/route-table.ts";
import type { RunningJob } from "../work/views.ts";
import { serve } from "./define.ts";

/** Operator actions on this node. */
export function adminRoutes(
  app: Elysia,
  deps: {
    leave: (reason: string) => void;
    /** Drains with that reason, or undrains with null; returns the reason now in force. */
    setDrain: (reason: string | null) => string | null;
    jobs: () => RunningJob[];
  },
): void {
  serve(app, ROUTES.leave, ({ body }) => {
    deps.leave(body.reason ?? "operator request");
    return { leaving: true };
  });
  serve(app, ROUTES.drain, ({ body }) => {
    const reason = deps.setDrain(body.reason ?? "operator request");
    return { draining: true, running: deps.jobs().length, reason };
  });
  serve(app, ROUTES.undrain, () => {
    deps.setDrain(null);
    return { draining: false, running: deps.jobs().length, reason: null };
  });
  serve(app, ROUTES.jobs, () => ({ jobs: deps.jobs() }));
}
