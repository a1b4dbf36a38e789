import * as v from "valibot";
import { expectation, issuePath } from "../config/errors.ts";

/** The one error shape every route answers with. */
export const errorBodySchema = v.object({
  /** A stable code: "validation", "not_leader", "no_such_item", ... */
  error: v.string(),
  message: v.string(),
  /** The request's field at fault ("body.items[2].type", "params.sha256", "query.limit"). */
  field: v.optional(v.string()),
  expected: v.optional(v.string()),
  found: v.optional(v.string()),
  /** 421: the node that can serve the request, where known. */
  leader: v.optional(v.nullable(v.object({ id: v.string(), address: v.nullable(v.string()) }))),
});

export type ErrorBody = v.InferOutput<typeof errorBodySchema>;

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

export function errorResponse(
  status: number,
  error: string,
  message: string,
  extra: Partial<ErrorBody> & Record<string, unknown> = {},
): Response {
  return jsonResponse(status, { error, message, ...extra } satisfies ErrorBody);
}

/** 422 naming the first offending field, what was expected and what was found. */
export function validationResponse(on: "body" | "query" | "params", issues: readonly v.BaseIssue<unknown>[]): Response {
  const first = issues[0];
  if (!first) return errorResponse(422, "validation", `invalid ${on}`);
  const path = issuePath(first);
  const field = path ? `${on}.${path}` : on;
  const expected = expectation(first);
  const found = clip(first.received ?? JSON.stringify(first.input) ?? "nothing");
  return errorResponse(422, "validation", `${field}: expected ${expected}, found ${found}`, { field, expected, found });
}

/** An error echoes what it was sent only in part: a 4 MiB field need not come back in the answer. */
function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * 503: this node could not write to its disk. The outcome is unknown, not "not applied": the entry may
 * be on other voters' disks already and commit under the next leader. Only a request that is safe to
 * repeat (a client-chosen id, the same lease or claim id, the same value) should be sent again.
 */
export function writeFailedResponse(message: string): Response {
  const response = errorResponse(
    503,
    "write_failed",
    `${message}; the outcome is unknown (it may still be applied): retry with the same id`,
  );
  response.headers.set("retry-after", "1");
  return response;
}
