import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { openApiDocument } from "../../src/net/openapi.ts";
import { ROUTES, type RouteSpec } from "../../src/net/route-table.ts";

/** The OpenAPI document generated from the route table: complete, structurally valid 3.1, and committed as is. */

type Json = Record<string, unknown>;
const doc = openApiDocument() as {
  openapi: string;
  info: Json;
  paths: Record<string, Record<string, Json>>;
  components: { schemas: Record<string, Json>; securitySchemes: Record<string, Json> };
};
const routes = Object.entries(ROUTES as Record<string, RouteSpec>);
const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9]+)/g, "{$1}");
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/** Every value in the document, depth first, with its JSON pointer. */
function* walk(value: unknown, pointer = "#"): Generator<[string, unknown]> {
  yield [pointer, value];
  if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value))
      yield* walk(v, `${pointer}/${k.replaceAll("~", "~0").replaceAll("/", "~1")}`);
  }
}

function resolve(ref: string): unknown {
  if (!ref.startsWith("#/")) return undefined;
  let at: unknown = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (!at || typeof at !== "object" || !(key in at)) return undefined;
    at = (at as Json)[key];
  }
  return at;
}

describe("the OpenAPI document", () => {
  test("names every route of the table, with its request and response schemas", () => {
    for (const [name, spec] of routes) {
      const op = doc.paths[openApiPath(spec.path)]?.[spec.method.toLowerCase()];
      if (!op) throw new Error(`${name}: ${spec.method} ${spec.path} is not in the document`);
      expect(op.operationId).toBe(name);
      const ok = (op.responses as Record<string, { content?: Record<string, { schema?: Json }> }>)["200"];
      const [type, media] = Object.entries(ok?.content ?? {})[0] ?? [];
      expect(type).toBe(spec.response ? "application/json" : spec.produces);
      expect(media?.schema, `${name}: response schema`).toBeDefined();
      if (spec.response) expect(Object.keys(media?.schema ?? {}).length, `${name}: an empty schema`).toBeGreaterThan(0);
      const body = (op.requestBody as { content?: Record<string, { schema?: Json }> } | undefined)?.content;
      expect(body?.["application/json"]?.schema !== undefined, `${name}: request body`).toBe(spec.body !== undefined);
      const query = (op.parameters as Json[]).filter((p) => p.in === "query").map((p) => p.name);
      if (spec.query) expect(query.length, `${name}: query parameters`).toBeGreaterThan(0);
      expect(op.security).toEqual(spec.auth === "none" ? [] : [{ [spec.auth]: [] }]);
    }
    const operations = Object.values(doc.paths).flatMap((item) => Object.keys(item));
    expect(operations).toHaveLength(routes.length);
  });

  test("is structurally valid OpenAPI 3.1: required fields, operations, unique ids, declared security", () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(typeof doc.info.title).toBe("string");
    expect(typeof doc.info.version).toBe("string");
    const ids = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) {
      expect(path.startsWith("/"), path).toBe(true);
      for (const [method, op] of Object.entries(item)) {
        expect(METHODS, `${path}: ${method}`).toContain(method);
        expect(ids.has(op.operationId as string), `operationId ${op.operationId} twice`).toBe(false);
        ids.add(op.operationId as string);
        const responses = op.responses as Record<string, { description?: unknown }>;
        expect(Object.keys(responses).length).toBeGreaterThan(0);
        for (const [code, r] of Object.entries(responses)) {
          expect(code, path).toMatch(/^([1-5](\d\d|XX)|default)$/);
          expect(typeof r.description, `${method} ${path} ${code}: description`).toBe("string");
        }
        for (const requirement of op.security as Json[]) {
          for (const scheme of Object.keys(requirement)) expect(doc.components.securitySchemes[scheme]).toBeDefined();
        }
        for (const p of op.parameters as Json[]) {
          expect(["path", "query", "header", "cookie"]).toContain(p.in as string);
          expect(typeof p.name).toBe("string");
          expect(p.schema, `${method} ${path}: ${p.name}`).toBeDefined();
        }
      }
    }
  });

  test("every path parameter is declared, required, and every declared one is in the path", () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const named = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      for (const [method, op] of Object.entries(item)) {
        const declared = (op.parameters as Json[]).filter((p) => p.in === "path");
        expect(declared.map((p) => p.name).sort(), `${method} ${path}`).toEqual(named);
        for (const p of declared) expect(p.required).toBe(true);
      }
    }
  });

  test("every $ref resolves, and every shared schema is used", () => {
    const refs = [...walk(doc)].filter(([pointer]) => pointer.endsWith("/$ref")).map(([, ref]) => ref as string);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) expect(resolve(ref), ref).toBeDefined();
    for (const name of Object.keys(doc.components.schemas)) {
      expect(refs, name).toContain(`#/components/schemas/${name}`);
    }
  });

  test("a path parameter with a shape in the table keeps it (the file routes' SHA-256)", () => {
    const op = doc.paths["/peer/files/{sha256}"]?.get as { parameters: Json[] };
    expect(op.parameters[0]?.schema).toMatchObject({ type: "string", pattern: "^[0-9a-f]{64}$" });
  });

  test("docs/openapi.json is the generated document (run bun scripts/gen-openapi.ts after changing a route)", () => {
    const committed = JSON.parse(readFileSync(new URL("../../docs/openapi.json", import.meta.url), "utf8"));
    expect(committed).toEqual(JSON.parse(JSON.stringify(doc)));
  });
});
