import type { Elysia } from "elysia";
import { openApiDocument } from "../net/openapi.ts";
import { ROUTES } from "../net/route-table.ts";
import { VERSION } from "../version.ts";
import { serve } from "./define.ts";

/** Liveness for load balancers and scripts, and the API's description: cheap, unauthenticated, nothing sensitive. */
export function healthRoutes(app: Elysia, nodeId: string): void {
  serve(app, ROUTES.health, () => ({ ok: true as const, id: nodeId, version: VERSION }));
  let document: Record<string, unknown> | undefined;
  serve(app, ROUTES.openapi, () => {
    document ??= openApiDocument();
    return document;
  });
}
