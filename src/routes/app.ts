import { Elysia } from "elysia";
import { BodyTooLargeError, bodyTooLargeResponse } from "../net/body-limit.ts";
import { errorResponse } from "../net/errors.ts";
import { allowedMethods } from "../net/url-input.ts";
import type { Logger } from "../observability/log.ts";

/** The router with one error shape for everything that is not a handler's own answer. */
export function createRouter(log: Logger): Elysia {
  const app = new Elysia();
  app.onError(({ code, error, request }) => {
    const path = new URL(request.url).pathname;
    if (code === "NOT_FOUND") return notFound(request.method, path);
    return unexpectedError(log, error, path);
  });
  return app;
}

/** 405 with `Allow` where the table serves the path with another method, else 404. */
function notFound(method: string, path: string): Response {
  const allowed = allowedMethods(path);
  if (allowed.length === 0) return errorResponse(404, "not_found", `no route ${method} ${path}`);
  const response = errorResponse(405, "method_not_allowed", `${method} ${path}: allowed ${allowed.join(", ")}`, {
    expected: allowed.join(", "),
    found: method,
  });
  response.headers.set("allow", allowed.join(", "));
  return response;
}

/**
 * What a thrown error becomes, in the router and in Bun.serve's own `error` hook: a body that outgrew
 * the limit while being read is the client's 413; anything else is a bug, logged, and a JSON 500.
 */
export function unexpectedError(log: Logger, error: unknown, path: string): Response {
  if (error instanceof BodyTooLargeError) return bodyTooLargeResponse(error.maxBytes);
  log.error("request failed", { path, error: String(error) });
  return errorResponse(500, "internal", "internal error; see the node's log");
}
