import type { Elysia } from "elysia";
import { ROUTES } from "../net/route-table.ts";
import { VERSION } from "../version.ts";
import { serve } from "./define.ts";

/** Liveness for load balancers and scripts: cheap, unauthenticated, reveals nothing sensitive. */
export function healthRoutes(app: Elysia, nodeId: string): void {
  serve(app, ROUTES.health, () => ({ ok: true, id: nodeId, version: VERSION }));
}
