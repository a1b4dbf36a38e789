import { toJsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import { evaluationRowSchema } from "../runs/evaluation-state.ts";
import { runViewSchema } from "../runs/views.ts";
import { nodeInfoSchema } from "../shared/node-info.ts";
import { manifestSchema } from "../sync/model.ts";
import { syncSessionStatusSchema } from "../sync/session.ts";
import { VERSION } from "../version.ts";
import { workItemSchema } from "../work/model.ts";
import { errorBodySchema } from "./errors.ts";
import { ROUTES, type RouteSpec } from "./route-table.ts";
import { SIGNATURE_HEADERS } from "./signing.ts";

type Json = Record<string, unknown>;

/** Schemas several routes share: written once under components/schemas and referenced. */
const SHARED: Record<string, v.GenericSchema> = {
  WorkItem: workItemSchema,
  NodeInfo: nodeInfoSchema,
  SyncSession: syncSessionStatusSchema,
  Manifest: manifestSchema,
  Run: runViewSchema,
  Evaluation: evaluationRowSchema,
};

/**
 * Valibot to JSON Schema 2020-12 (OpenAPI 3.1's dialect), as the wire carries it: a query's "10" before it
 * becomes 10, a field with a default as optional. Checks JSON Schema cannot say (a custom `check`) are left out.
 */
function jsonSchema(schema: v.GenericSchema, shared = true): Json {
  const out = toJsonSchema(schema, {
    target: "draft-2020-12",
    typeMode: "input",
    errorMode: "ignore",
    ...(shared ? { definitions: SHARED } : {}),
  }) as Json;
  delete out.$schema;
  delete out.$defs;
  return JSON.parse(JSON.stringify(out).replaceAll('"#/$defs/', '"#/components/schemas/'));
}

const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9]+)/g, "{$1}");
const pathNames = (path: string) => [...path.matchAll(/:([A-Za-z0-9]+)/g)].map((m) => m[1] as string);

function parameters(spec: RouteSpec): Json[] {
  const out: Json[] = [];
  const params = spec.params ? (jsonSchema(spec.params).properties as Record<string, Json>) : {};
  for (const name of pathNames(spec.path)) {
    out.push({ name, in: "path", required: true, schema: params[name] ?? { type: "string" } });
  }
  if (spec.query) {
    const query = jsonSchema(spec.query);
    const required = new Set((query.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries((query.properties as Record<string, Json>) ?? {})) {
      out.push({ name, in: "query", required: required.has(name), schema });
    }
  }
  return out;
}

function operation(name: string, spec: RouteSpec): Json {
  const ok = spec.response
    ? { description: "OK", content: { "application/json": { schema: jsonSchema(spec.response) } } }
    : { description: "OK", content: { [spec.produces]: { schema: { type: "string", format: "binary" } } } };
  const op: Json = {
    operationId: name,
    ...(spec.summary ? { summary: spec.summary } : {}),
    tags: [spec.auth === "peer" ? "peer" : spec.path.split("/")[1] || "node"],
    security: spec.auth === "none" ? [] : [{ [spec.auth]: [] }],
    parameters: parameters(spec),
    responses: {
      "200": ok,
      default: {
        description:
          "An error: 4xx for the request (422 names the field); 421: refused before anything was appended, names the leader (safe to send again); 503: the write failed or its outcome is unknown (retry with the same id)",
        content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
      },
    },
  };
  if (spec.body)
    op.requestBody = { required: true, content: { "application/json": { schema: jsonSchema(spec.body) } } };
  return op;
}

/** The node's HTTP API as OpenAPI 3.1, generated from the route table (served at /openapi.json, kept in docs/). */
export function openApiDocument(): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const [name, spec] of Object.entries(ROUTES as Record<string, RouteSpec>)) {
    const path = openApiPath(spec.path);
    paths[path] = { ...paths[path], [spec.method.toLowerCase()]: operation(name, spec) };
  }
  const schemas: Record<string, Json> = { Error: jsonSchema(errorBodySchema, false) };
  for (const [name, schema] of Object.entries(SHARED)) {
    schemas[name] = jsonSchema(schema, false);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "p2p-orchestrator node API",
      version: VERSION,
      description:
        "Every node serves the same API. Operators send `Authorization: Bearer <token>`; peers sign each request " +
        "(src/net/signing.ts). Writes go to the Raft leader: a follower answers 421 with `leader.address`.",
    },
    paths,
    components: {
      schemas,
      securitySchemes: {
        operator: { type: "http", scheme: "bearer", description: "The cluster's operator token (token_file)" },
        peer: {
          type: "apiKey",
          in: "header",
          name: SIGNATURE_HEADERS.signature,
          description: `HMAC over the request with the cluster secret, with ${Object.values(SIGNATURE_HEADERS).join(", ")}`,
        },
      },
    },
  };
}
