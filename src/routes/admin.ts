import type { Elysia } from "elysia";
import { ROUTES } from "../net/route-table.ts";
import { serve } from "./define.ts";

/** Operator actions on this node. */
export function adminRoutes(app: Elysia, deps: { leave: (reason: string) => void }): void {
  serve(app, ROUTES.leave, ({ body }) => {
    deps.leave(body.reason ?? "operator request");
    return { leaving: true };
  });
}
