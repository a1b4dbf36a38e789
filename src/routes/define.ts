import type { Elysia } from "elysia";
import * as v from "valibot";
import { validationResponse } from "../net/errors.ts";
import { readJsonObject } from "../net/json-body.ts";
import type { PathParams, RouteSpec } from "../net/route-table.ts";
import { pathParams, queryValues } from "../net/url-input.ts";
import { domainErrorResponse, type ErrorContext } from "./errors.ts";

type Out<S> = S extends v.GenericSchema ? v.InferOutput<S> : undefined;

/**
 * What a handler may answer: a value of the route's response schema (sent as JSON), or, for a route that streams
 * bytes, the Response. Anything else (a 404, a refusal) is thrown and answered by `domainErrorResponse`.
 */
export type Answer<Spec extends RouteSpec> = Spec["response"] extends v.GenericSchema
  ? v.InferInput<Spec["response"]>
  : Response;

export interface RouteInput<Spec extends RouteSpec> {
  body: Out<Spec["body"]>;
  query: Out<Spec["query"]>;
  /** Path parameters (":id" in the table's path), checked against the route's `params` schema if it has one. */
  params: Spec["params"] extends v.GenericSchema ? v.InferOutput<Spec["params"]> : PathParams<Spec["path"]>;
  request: Request;
}

/**
 * Registers a handler for one entry of the route table. Path, query and body are read here (Elysia
 * parses nothing) and checked against the table's Valibot schemas, so every route answers bad input
 * the same way: 400 for bad encodings and malformed JSON, 415 for a body not sent as JSON, 422 naming
 * the field for a value of the wrong shape. The handler's answer must be of the route's response schema
 * (checked by the compiler); a domain error it throws becomes its HTTP answer in `domainErrorResponse`.
 */
export function serve<Spec extends RouteSpec>(
  app: Elysia,
  spec: Spec,
  handler: (input: RouteInput<Spec>) => Answer<Spec> | Promise<Answer<Spec>>,
  errors: ErrorContext = {},
): void {
  app.route(
    spec.method,
    spec.path,
    async ({ request }: { request: Request }) => {
      const url = new URL(request.url);
      const raw = pathParams(spec.path, url.pathname);
      if (!raw.ok) return raw.response;
      let params: unknown = raw.value;
      if (spec.params) {
        const parsed = v.safeParse(spec.params, raw.value);
        if (!parsed.success) return validationResponse("params", parsed.issues);
        params = parsed.output;
      }
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
      try {
        return await handler({ body, query, params, request } as RouteInput<Spec>);
      } catch (e) {
        const response = domainErrorResponse(e, errors);
        if (response) return response;
        throw e;
      }
    },
    { parse: "none" },
  );
}
