import type { Elysia } from "elysia";
import * as v from "valibot";
import { validationResponse } from "../net/errors.ts";
import type { RouteSpec } from "../net/route-table.ts";

type Out<S> = S extends v.GenericSchema<unknown, infer O> ? O : undefined;

export interface RouteInput<Spec extends RouteSpec> {
  body: Out<Spec["body"]>;
  query: Out<Spec["query"]>;
  /** Path parameters (":id" in the table's path). */
  params: Record<string, string>;
  request: Request;
}

/**
 * Registers a handler for one entry of the route table. Body and query are validated with the
 * table's Valibot schemas here, so every route answers bad input the same way (422 naming the field).
 */
export function serve<Spec extends RouteSpec>(
  app: Elysia,
  spec: Spec,
  handler: (input: RouteInput<Spec>) => unknown,
): void {
  app.route(
    spec.method,
    spec.path,
    (ctx: { body: unknown; query: Record<string, string>; params: Record<string, string>; request: Request }) => {
      let body: unknown;
      let query: unknown;
      if (spec.body) {
        const parsed = v.safeParse(spec.body, ctx.body ?? {});
        if (!parsed.success) return validationResponse("body", parsed.issues);
        body = parsed.output;
      }
      if (spec.query) {
        const parsed = v.safeParse(spec.query, { ...ctx.query });
        if (!parsed.success) return validationResponse("query", parsed.issues);
        query = parsed.output;
      }
      return handler({ body, query, params: ctx.params ?? {}, request: ctx.request } as RouteInput<Spec>);
    },
  );
}
