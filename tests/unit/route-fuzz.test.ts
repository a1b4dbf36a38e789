import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { loadNodeConfig, type NodeConfig } from "../../src/config/load.ts";
import { ROUTES, type RouteName, type RouteSpec } from "../../src/net/route-table.ts";
import { signRequest } from "../../src/net/signing.ts";
import { type RunningNode, startNode } from "../../src/node/node.ts";
import { createLogger } from "../../src/observability/log.ts";
import { freePort } from "./free-port.ts";
import { samples } from "./schema-samples.ts";

/**
 * Every route of the route table, driven with generated bad input as each caller kind sends it
 * (operator token, or a real cluster signature so peer requests reach the schemas): wrong types per
 * field, deep nesting, huge and non-finite numbers, null/array/string bodies, empty bodies, wrong
 * content types, bad percent-encodings, wrong methods, oversize bodies. A route added to the table is
 * fuzzed without touching this file. Seeded: FUZZ_SEED=<n> replays a run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_205);
const MUTATIONS_PER_SLOT = 3;
const MAX_BODY_BYTES = 4 * 1024 * 1024;

let dir: string;
let config: NodeConfig;
let node: RunningNode;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "p2p-route-fuzz-"));
  const path = join(dir, "cluster.toml");
  // x1 is a configured (non-voting, absent) node: the signer of every peer request below. It is also
  // a job type, so submissions built from the first candidate string ("x1") are valid ones; the queue
  // takes them all, so backpressure does not answer in place of the checks behind it.
  writeFileSync(
    path,
    `[cluster]\nname = "fuzz"\ndata_dir = "data/{id}"\n\n[work]\nsoft_limit = 100000\nhard_limit = 100000\n\n[jobs.x1]\ncommand = ["true"]\n\n[data.models]\npath = "models"\nglobs = ["*.pt"]\n\n[[nodes]]\nid = "solo"\naddress = "127.0.0.1:${freePort()}"\nvoter = true\ncapabilities = ["x1"]\nslots = 0\n\n[[nodes]]\nid = "x1"\naddress = "127.0.0.1:${freePort()}"\nvoter = false\n`,
  );
  mkdirSync(join(dir, "models"));
  writeFileSync(join(dir, "cluster.secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
  writeFileSync(join(dir, "operator.token"), randomBytes(24).toString("hex"), { mode: 0o600 });
  config = loadNodeConfig(path, { node: "solo" });
  node = await startNode(config, createLogger("error"));
  base = node.url;
  // Leader-only handlers are fuzzed too: a single voter elects itself once its election timeout passes.
  const deadline = Date.now() + 5_000;
  while ((await election()).role !== "leader") {
    if (Date.now() > deadline) throw new Error("the single voter did not become leader within 5 s");
    await Bun.sleep(20);
  }
});

async function election(): Promise<{ role: string; term: number }> {
  const response = await fetch(`${base}${ROUTES.election.path}`, {
    headers: { authorization: `Bearer ${config.token}` },
  });
  return (await response.json()) as { role: string; term: number };
}

afterAll(async () => {
  await node?.leave("test");
  rmSync(dir, { recursive: true, force: true });
});

// ---- deterministic generation ---------------------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function seedFor(name: string): number {
  let h = SEED >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16_777_619) >>> 0;
  return h;
}

const deepArray = (levels: number) => "[".repeat(levels) + "]".repeat(levels);
const deepObject = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;

/** Raw JSON fragments put in place of one field: wrong types, extreme and non-finite numbers, nesting. */
const BAD_VALUES = [
  "null",
  "true",
  '"x"',
  '""',
  "0",
  "-1",
  "-0",
  "0.5",
  "1e308",
  "-1e308",
  "9007199254740993",
  "1e309",
  "-1e309",
  "NaN",
  "Infinity",
  "[]",
  "{}",
  "[1,2]",
  '{"a":1}',
  '{"__proto__":{"polluted":1}}',
  `"${"x".repeat(100_000)}"`,
  '"\\u0000\\ud800"',
  deepArray(100_000),
  deepObject(40),
];

const NON_FINITE = ["1e309", "-1e309"];

/** Whole bodies that are not a JSON object, or not JSON at all. */
const BAD_BODIES = [
  "",
  "   ",
  "null",
  "[]",
  "[{}]",
  '"text"',
  "1",
  "1e309",
  "true",
  "{",
  '{"a":}',
  "NaN",
  '{"a": Infinity}',
  deepArray(100_000),
  deepObject(100_000),
  `{"a":${deepArray(100_000)}}`,
];

const BAD_SEGMENTS = ["%E0%A4%A", "%ZZ", "%", "%C0%80", "%FF", "%00", "%2F", "%F0%9F%98%80", "a".repeat(10_000)];
const BAD_QUERY_VALUES = [
  "%E0%A4%A",
  "%ZZ",
  "",
  "-1",
  "-0",
  "1e308",
  "9007199254740993",
  "9".repeat(400),
  "NaN",
  "Infinity",
  "0x10",
  "x".repeat(10_000),
];
const WRONG_TYPES = ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", "jsonx"];
const OTHER_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/** A concrete path for a table path: each ":name" filled. */
const fill = (path: string, segment = "nope") => path.replace(/:[A-Za-z0-9]+/g, segment);

interface Case {
  label: string;
  method: string;
  path: string;
  /** Raw body text, or a byte stream (sent chunked). */
  body?: string | ReadableStream<Uint8Array>;
  contentType?: string | null;
  /** 405 is the expected answer: check its Allow header. */
  wrongMethod?: boolean;
}

const SLOT = "__fuzz_slot__";

/** Always tried on a leaf of this type: the extremes a schema without bounds lets through. */
const EXTREMES: Record<string, string[]> = {
  number: ["1e308", "9007199254740993"],
  boolean: ["true"],
};

function at(value: unknown, path: (string | number)[]): unknown {
  return path.reduce<unknown>((inner, key) => (inner as Record<string | number, unknown>)[key], value);
}

/** Every place in a valid value a bad one can go: each field, each array item, and the value itself. */
function slots(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = path.length ? [path] : [];
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) out.push(...slots(item, [...path, i]));
  } else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) out.push(...slots(item, [...path, key]));
  }
  return out;
}

function withSlot(value: unknown, path: (string | number)[]): string {
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  at[path[path.length - 1] as string | number] = SLOT;
  return JSON.stringify(copy);
}

function bodyCases(name: RouteName, spec: RouteSpec, next: () => number): Case[] {
  const path = fill(spec.path);
  const out: Case[] = BAD_BODIES.map((body) => ({
    label: `body ${body.slice(0, 20)}`,
    method: spec.method,
    path,
    body,
  }));
  const bases = samples(spec.body as v.GenericSchema).filter((b): b is Record<string, unknown> => isObject(b));
  for (const [n, valid] of bases.entries()) {
    const text = JSON.stringify(valid);
    // A valid body is sent only with a content type that must be refused: it never reaches a handler.
    for (const contentType of [...WRONG_TYPES, null]) {
      out.push({ label: `base ${n} as ${contentType}`, method: spec.method, path, body: text, contentType });
    }
    out.push({
      label: `base ${n} + unknown key`,
      method: spec.method,
      path,
      body: JSON.stringify({ ...valid, zz: 1 }),
    });
    for (const slot of slots(valid)) {
      const template = withSlot(valid, slot);
      const random = Array.from(
        { length: MUTATIONS_PER_SLOT },
        () => BAD_VALUES[Math.floor(next() * BAD_VALUES.length)],
      );
      for (const bad of [...(EXTREMES[typeof at(valid, slot)] ?? []), ...(random as string[])]) {
        const body = template.replace(`"${SLOT}"`, () => bad);
        if (NOT_SENT_VALID.has(name) && isValid(spec, body, bad)) continue;
        out.push({ label: `base ${n} ${slot.join(".")} = ${bad.slice(0, 20)}`, method: spec.method, path, body });
      }
    }
  }
  const padded = (n: number) => `{"pad":"${" ".repeat(n)}"}`;
  out.push({ label: "oversize (content-length)", method: spec.method, path, body: padded(MAX_BODY_BYTES + 1) });
  out.push({ label: "oversize (chunked)", method: spec.method, path, body: chunked(MAX_BODY_BYTES + 1024) });
  return out;
}

function queryCases(spec: RouteSpec): Case[] {
  const keys = Object.keys((spec.query as { entries?: Record<string, unknown> } | undefined)?.entries ?? {});
  const path = fill(spec.path);
  const out: Case[] = [];
  for (const key of keys) {
    out.push({ label: `query ${key} repeated`, method: spec.method, path: `${path}?${key}=1&${key}=2` });
    out.push({ label: `query ${key}[]`, method: spec.method, path: `${path}?${key}[]=1` });
    for (const value of BAD_QUERY_VALUES) {
      out.push({ label: `query ${key}=${value.slice(0, 20)}`, method: spec.method, path: `${path}?${key}=${value}` });
    }
  }
  for (const junk of ["zz=1", "__proto__=1", "constructor=1", "%ZZ=1", "&&=&", "a=1&a=%E0%A4%A"]) {
    out.push({ label: `query ${junk}`, method: spec.method, path: `${path}?${junk}` });
  }
  return out;
}

function pathCases(spec: RouteSpec, body: string | undefined): Case[] {
  if (!spec.path.includes(":")) return [];
  return BAD_SEGMENTS.map((segment) => ({
    label: `path ${segment.slice(0, 20)}`,
    method: spec.method,
    path: fill(spec.path, segment),
    body,
  }));
}

function methodCases(spec: RouteSpec): Case[] {
  const path = fill(spec.path);
  const served = Object.values(ROUTES as Record<string, RouteSpec>)
    .filter((other) => matches(other.path, path))
    .map((other) => other.method as string);
  return OTHER_METHODS.filter((method) => !served.includes(method)).map((method) => ({
    label: `method ${method}`,
    method,
    path,
    wrongMethod: true,
  }));
}

function matches(pattern: string, path: string): boolean {
  const want = pattern.split("/");
  const got = path.split("/");
  return want.length === got.length && want.every((w, i) => w.startsWith(":") || w === got[i]);
}

function chunked(bytes: number): ReadableStream<Uint8Array> {
  const piece = new Uint8Array(64 * 1024).fill(0x20);
  let left = bytes;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (left <= 0) return controller.close();
      const n = Math.min(left, piece.length);
      left -= n;
      controller.enqueue(piece.subarray(0, n));
    },
  });
}

/**
 * Operator commands that would take this node out of the test (leave, a voter that is not there, a
 * deposed leader): a mutated body their schema accepts is a command, not bad input, and is not sent.
 */
const NOT_SENT_VALID = new Set<RouteName>(["leave", "voters", "electionTransfer", "electionStepDown"]);

/** Non-finite literals always count as invalid: only the body reader can tell `1e309` from a number. */
function isValid(spec: RouteSpec, body: string, bad: string): boolean {
  if (NON_FINITE.includes(bad)) return false;
  try {
    return v.is(spec.body as v.GenericSchema, JSON.parse(body));
  } catch {
    return false;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---- sending and judging ----------------------------------------------------------------------------

async function send(spec: RouteSpec, c: Case): Promise<Response> {
  const url = new URL(c.path, base);
  const headers: Record<string, string> = {};
  const contentType = c.contentType === undefined ? "application/json" : c.contentType;
  if (c.body !== undefined && contentType !== null) headers["content-type"] = contentType;
  if (spec.auth === "operator") headers.authorization = `Bearer ${config.token}`;
  if (spec.auth === "peer") {
    Object.assign(
      headers,
      signRequest({
        secret: config.secret,
        nodeId: "x1",
        method: c.method,
        pathWithQuery: url.pathname + url.search,
        body: typeof c.body === "string" ? c.body : "",
        now: Date.now(),
        to: config.nodeId,
      }),
    );
  }
  const hasBody = c.body !== undefined && c.method !== "GET";
  return fetch(url, {
    method: c.method,
    headers,
    body: hasBody ? c.body : undefined,
    signal: AbortSignal.timeout(5_000),
  });
}

/** What is wrong with an answer, or null: no 5xx, no empty body, JSON errors, 422s name their field. */
/** A 2xx answer must match the route's response schema, as the typed client checks it. */
function answerProblem(spec: RouteSpec, status: number, text: string): string | null {
  if (!spec.response) return null;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `${status} body is not JSON: ${text.slice(0, 200)}`;
  }
  const parsed = v.safeParse(spec.response, body);
  if (parsed.success) return null;
  const at = parsed.issues[0]?.path?.map((p) => String(p.key)).join(".") ?? "";
  return `${status} answer does not match the route's response schema at ${at}: ${parsed.issues[0]?.message}`;
}

async function judge(response: Response, c: Case, spec: RouteSpec): Promise<string | null> {
  const text = await response.text();
  const status = response.status;
  if (status >= 500) return `${status} ${text.slice(0, 300)}`;
  if (text.length === 0) return `${status} with an empty body`;
  if (status === 401) return `401, so the fuzz never reached the schemas: ${text.slice(0, 200)}`;
  if (status < 400) return status < 300 ? answerProblem(spec, status, text) : null;
  const type = response.headers.get("content-type") ?? "";
  if (!type.includes("application/json")) return `${status} ${type || "no content-type"}: ${text.slice(0, 200)}`;
  let body: { error?: unknown; message?: unknown; field?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    return `${status} body is not JSON: ${text.slice(0, 200)}`;
  }
  if (typeof body.error !== "string" || typeof body.message !== "string") return `${status} ${text.slice(0, 200)}`;
  if (status === 422 && (typeof body.field !== "string" || body.field === "")) {
    return `422 names no field: ${text.slice(0, 300)}`;
  }
  if (c.wrongMethod && (status !== 405 || !response.headers.get("allow"))) {
    return `wrong method answered ${status} (allow: ${response.headers.get("allow")}): ${text.slice(0, 200)}`;
  }
  return null;
}

function casesFor(name: RouteName, spec: RouteSpec, next: () => number): Case[] {
  const validBody = spec.body ? JSON.stringify(samples(spec.body as v.GenericSchema)[0]) : undefined;
  return [
    ...(spec.body ? bodyCases(name, spec, next) : []),
    ...queryCases(spec),
    ...pathCases(spec, validBody),
    ...methodCases(spec),
  ];
}

describe(`route fuzz (FUZZ_SEED=${SEED})`, () => {
  // Raft's peer routes go last: a valid message from x1 at a higher term rightly deposes this node, and
  // the routes fuzzed before them should meet a leader, so leader-only handlers are reached too.
  const raftLast = (name: RouteName) => (ROUTES[name].path.startsWith("/peer/raft") ? 1 : 0);
  for (const name of (Object.keys(ROUTES) as RouteName[]).sort((a, b) => raftLast(a) - raftLast(b))) {
    const spec: RouteSpec = ROUTES[name];
    test(`${name}: ${spec.method} ${spec.path}`, async () => {
      const cases = casesFor(name, spec, rng(seedFor(name)));
      const failures: string[] = [];
      for (const c of cases) {
        let problem: string | null;
        try {
          problem = await judge(await send(spec, c), c, spec);
        } catch (e) {
          problem = `no answer: ${String(e)}`;
        }
        if (problem) failures.push(`${c.method} ${c.path.slice(0, 80)} [${c.label}] -> ${problem}`);
      }
      const health = await fetch(`${base}/health`);
      if (health.status !== 200) failures.push(`/health answered ${health.status} after the fuzz`);
      if (failures.length > 0) {
        throw new Error(
          `route fuzz FUZZ_SEED=${SEED}: ${failures.length} of ${cases.length} answers wrong on ${name}:\n${failures.slice(0, 20).join("\n")}`,
        );
      }
      expect(failures).toEqual([]);
    });
  }

  test("the node is alive and still serving after every route was fuzzed", async () => {
    const status = await fetch(`${base}/status`, { headers: { authorization: `Bearer ${config.token}` } });
    expect(status.status).toBe(200);
    // A term past 2^53 could never be won again (term + 1 === term): no message may move it there.
    const { term } = await election();
    if (!Number.isSafeInteger(term)) throw new Error(`route fuzz FUZZ_SEED=${SEED}: the Raft term is now ${term}`);
    const path = ROUTES.peerSwim.path;
    const body = JSON.stringify({ messages: [{ type: "ping", from: "x1", seq: 1, updates: [] }] });
    const headers = signRequest({
      secret: config.secret,
      nodeId: "x1",
      method: "POST",
      pathWithQuery: path,
      body,
      now: Date.now(),
      to: config.nodeId,
    });
    const ping = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body,
    });
    expect(ping.status).toBe(200);
  });
});
