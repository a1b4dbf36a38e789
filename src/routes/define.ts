import type { Elysia } from "elysia";
import * as v from "valibot";
import { validationResponse } from "../net/errors.ts";
import { readJsonObject } from "../net/json-body.ts";
import type { RouteSpec } from "../net/route-table.ts";
import { pathParams, queryValues } from "../net/url-input.ts";

type Out<S> = S extends v.GenericSchema<unknown, infer O> ? O : undefined;

export interface RouteInput<Spec extends RouteSpec> {
  body: Out<Spec["body"]>;
  query: Out<Spec["query"]>;
  /** Path parameters (":id" in the table's path). */
  params: Record<string, string>;
  request: Request;
}

/**
 * Registers a handler for one entry of the route table. Path, query and body are read here (Elysia
 * parses nothing) and checked against the table's Valibot schemas, so every route answers bad input
 * the same way: 400 for bad encodings and malformed JSON, 415 for a body not sent as JSON, 422 naming
 * the field for a value of the wrong shape.
 */
export function serve<Spec extends RouteSpec>(
  app: Elysia,
  spec: Spec,
  handler: (input: RouteInput<Spec>) => unknown,
): void {
  app.route(
    spec.method,
    spec.path,
    async ({ request }: { request: Request }) => {
      const url = new URL(request.url);
      const params = pathParams(spec.path, url.pathname);
      if (!params.ok) return params.response;
      let query: unknown;
      if (spec.query) {
        const values = queryValues(url.search);
        if (!values.ok) return values.response;
        const parsed = v.safeParse(spec.query, values.value);
        if (!parsed.success) return validationResponse("query", parsed.issues);
        query = parsed.output;
      }
      let body: unknown;
      if (spec.body) {
        const read = await readJsonObject(request);
        if (!read.ok) return read.response;
        const parsed = v.safeParse(spec.body, read.value);
        if (!parsed.success) return validationResponse("body", parsed.issues);
        body = parsed.output;
      }
      return handler({ body, query, params: params.value, request } as RouteInput<Spec>);
    },
    { parse: "none" },
  );
}
