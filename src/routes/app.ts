import { Elysia } from "elysia";
import { errorResponse } from "../net/errors.ts";
import type { Logger } from "../observability/log.ts";

/** The router with one error shape for everything that is not a handler's own answer. */
export function createRouter(log: Logger): Elysia {
  const app = new Elysia();
  app.onError(({ code, error, request }) => {
    const path = new URL(request.url).pathname;
    switch (code) {
      case "NOT_FOUND":
        return errorResponse(404, "not_found", `no route ${request.method} ${path}`);
      case "PARSE":
        return errorResponse(400, "bad_request", "body is not valid JSON");
      default:
        log.error("request failed", { path, code: String(code), error: String(error) });
        return errorResponse(500, "internal", "internal error; see the node's log");
    }
  });
  return app;
}
