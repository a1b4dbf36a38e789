import * as v from "valibot";
import { addressSchema, nodeIdSchema } from "../config/schema.ts";
import { kvKeySchema, kvSetPayload } from "../consensus/kv.ts";
import { raftEnvelopeSchema, raftMessageSchema, snapshotChunkSchema } from "../consensus/messages.ts";
import { electionViewSchema, kvValueSchema, logPositionSchema, votersChangedSchema } from "../consensus/views.ts";
import { storedTraceSchema } from "../db/traces.ts";
import { swimEnvelopeSchema, swimMessageSchema } from "../membership/messages.ts";
import {
  abtestParamsSchema,
  EVALUATION_ID,
  evaluationRowSchema,
  tournamentParamsSchema,
} from "../runs/evaluation-state.ts";
import { BASELINE } from "../runs/policy.ts";
import {
  eloTableSchema,
  evaluationViewSchema,
  modelViewSchema,
  runAnalyticsSchema,
  runHistoryRowSchema,
  runStepAnswerSchema,
  runSummarySchema,
  runViewSchema,
} from "../runs/views.ts";
import { nodeStatusSchema } from "../shared/status.ts";
import { manifestSchema, pieceMapSchema, sha256Schema, syncStartBodySchema } from "../sync/model.ts";
import { syncSessionStatusSchema } from "../sync/session.ts";
import { categoryStatusSchema, syncStatusSchema } from "../sync/views.ts";
import { claimSchema } from "../work/commands.ts";
import { jobResultSchema, offerSchema, workBatchSchema, workItemInputSchema, workItemSchema } from "../work/model.ts";
import {
  reportAnswerSchema,
  runningJobSchema,
  submittedSchema,
  workAddedSchema,
  workHistoryRowSchema,
  workItemViewSchema,
  workStatusSchema,
} from "../work/views.ts";
import { wireNumberSchema } from "./bounds.ts";
import { FREE_FORM_DEPTH, freeForm } from "./free-form.ts";
import { relayConnectQuerySchema } from "./relay/frames.ts";

/**
 * Every HTTP route of the node, shared by the server (which must serve each one) and every
 * client (which can only name routes listed here). A contract test holds the two together.
 * `auth`: "none" is open, "operator" needs the bearer token, "peer" needs a cluster signature.
 */
export type Auth = "none" | "operator" | "peer";

interface RouteBase {
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly auth: Auth;
  readonly body?: v.GenericSchema;
  readonly query?: v.GenericSchema;
  /** Path parameters with a shape beyond "a string", checked like the body (422 naming `params.<name>`). */
  readonly params?: v.GenericSchema<Record<string, string>, Record<string, string>>;
  /** One line for the OpenAPI document. */
  readonly summary?: string;
}

/** Every route answers 2xx either with JSON of the `response` schema or, streaming bytes, with `produces`. */
export type RouteSpec = RouteBase &
  (
    | { readonly response: v.GenericSchema; readonly produces?: never }
    | { readonly produces: string; readonly response?: never }
  );

type ParamNames<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<`/${Rest}`>
  : P extends `${string}:${infer Name}`
    ? Name
    : never;

/** The path's ":name" parameters as an object of strings: `PathParams<"/runs/:name">` is `{ name: string }`. */
export type PathParams<P extends string> = { [K in ParamNames<P>]: string };

const positiveInt = (max: number) =>
  v.pipe(v.string(), v.regex(/^\d+$/, "a non-negative integer"), v.transform(Number), v.maxValue(max));

export const tracesQuerySchema = v.strictObject({
  machine: v.optional(v.pipe(v.string(), v.maxLength(64))),
  instance: v.optional(v.pipe(v.string(), v.maxLength(128))),
  /** Only rows after this sequence number (for --follow), or after this time with `sinceMs`. */
  after: v.optional(positiveInt(Number.MAX_SAFE_INTEGER)),
  since: v.optional(positiveInt(Number.MAX_SAFE_INTEGER)),
  limit: v.optional(positiveInt(10_000)),
});

export const leaveBodySchema = v.strictObject({
  reason: v.optional(v.pipe(v.string(), v.maxLength(200))),
});

export const drainBodySchema = leaveBodySchema;
const drainAnswer = v.object({
  draining: v.boolean(),
  /** Jobs still running here (they finish and report). */
  running: wireNumberSchema,
  reason: v.nullable(v.string()),
});

export const transferBodySchema = v.strictObject({ to: nodeIdSchema });

export const votersBodySchema = v.variant("action", [
  v.strictObject({ action: v.literal("add"), id: nodeIdSchema, address: addressSchema }),
  v.strictObject({ action: v.literal("remove"), id: nodeIdSchema }),
]);
export const emptyBodySchema = v.strictObject({});

export const kvGetQuerySchema = v.strictObject({
  key: kvKeySchema,
  /** "linearizable" (default) is served by the leader under its lease; "local" by any voter, possibly stale. */
  consistency: v.optional(v.picklist(["linearizable", "local"]), "linearizable"),
});

export const workHistoryQuerySchema = v.strictObject({
  item: v.optional(v.pipe(v.string(), v.maxLength(128))),
  since: v.optional(positiveInt(Number.MAX_SAFE_INTEGER)),
  limit: v.optional(positiveInt(10_000)),
});

export const workListQuerySchema = v.strictObject({
  state: v.optional(v.pipe(v.string(), v.maxLength(32))),
  type: v.optional(v.pipe(v.string(), v.maxLength(32))),
  limit: v.optional(positiveInt(10_000)),
});

export const cancelBodySchema = v.strictObject({ reason: v.optional(v.pipe(v.string(), v.maxLength(200))) });

export const claimBodySchema = v.strictObject({
  offer: offerSchema,
  max: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(256)),
  /** The worker's id for this claim: sent again after a lost answer, it returns the same leases. */
  claimId: v.optional(v.pipe(v.string(), v.maxLength(64))),
  /** Set when this claim id was sent before without an answer: only then are earlier leases looked up. */
  retry: v.optional(v.boolean(), false),
});

/** A worker's report on its lease: the same body for start, heartbeat, complete and fail. */
export const reportBodySchema = v.strictObject({
  leaseId: v.pipe(v.string(), v.maxLength(64)),
  progress: v.optional(freeForm({ maxDepth: FREE_FORM_DEPTH, maxBytes: 16 * 1024 })),
  result: v.optional(jobResultSchema),
  /** complete: the files the job left in its output folder (paths on the reporting node). */
  artifacts: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(1_024))), v.maxLength(1_000))),
  error: v.optional(v.pipe(v.string(), v.maxLength(4_000))),
  /** fail: how long to wait before the next attempt (the worker's backoff with jitter). */
  retryDelayMs: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(86_400_000))),
});

export const runActionBodySchema = v.strictObject({ reason: v.optional(v.pipe(v.string(), v.maxLength(200))) });
export const runPromoteBodySchema = v.strictObject({
  model: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, "a model id: its SHA-256 as 64 lowercase hex digits")),
  reason: v.optional(v.pipe(v.string(), v.maxLength(200))),
});
const modelIdSchema = v.pipe(
  v.string(),
  v.regex(/^[0-9a-f]{64}$/, "a model id: its SHA-256 as 64 lowercase hex digits"),
);
const evaluationIdSchema = v.pipe(
  v.string(),
  v.regex(EVALUATION_ID, "an id of 1-64 lowercase letters, digits, '.', '_' or '-'"),
);
export const abtestBodySchema = v.strictObject({
  id: v.optional(evaluationIdSchema),
  a: modelIdSchema,
  b: modelIdSchema,
  /** The sequential test's bounds and sizes, as a run's gate takes them (default: the gate's defaults). */
  params: v.optional(abtestParamsSchema, {}),
});
export const tournamentBodySchema = v.strictObject({
  id: v.optional(evaluationIdSchema),
  /** Models of the run by id, and baselines ("random", "mcts:200"). */
  players: v.pipe(
    v.array(
      v.union([modelIdSchema, v.pipe(v.string(), v.regex(BASELINE, 'a model id or a baseline ("random", "mcts:N")'))]),
    ),
    v.minLength(2),
    v.maxLength(32),
  ),
  params: v.optional(tournamentParamsSchema, {}),
});

export const runHistoryQuerySchema = v.strictObject({ limit: v.optional(positiveInt(10_000)) });

export const manifestQuerySchema = v.strictObject({
  category: v.optional(v.pipe(v.string(), v.maxLength(32))),
});

const list = <K extends string, S extends v.GenericSchema>(key: K, item: S) =>
  v.object({ [key]: v.array(item) } as { [P in K]: v.ArraySchema<S, undefined> });

const sha256Params = v.strictObject({ sha256: sha256Schema });
const swimAnswer = v.object({ messages: v.array(swimMessageSchema) });
const raftAnswer = v.object({ messages: v.array(raftMessageSchema) });

export const ROUTES = {
  health: {
    method: "GET",
    path: "/health",
    auth: "none",
    summary: "Liveness: this node's id and version",
    response: v.object({ ok: v.literal(true), id: v.string(), version: v.string() }),
  },
  openapi: {
    method: "GET",
    path: "/openapi.json",
    auth: "none",
    summary: "This document: the API as OpenAPI 3.1",
    response: v.record(v.string(), v.unknown()),
  },
  status: { method: "GET", path: "/status", auth: "operator", response: nodeStatusSchema },
  metrics: { method: "GET", path: "/metrics", auth: "operator", produces: "text/plain; version=0.0.4" },
  traces: {
    method: "GET",
    path: "/traces",
    auth: "operator",
    query: tracesQuerySchema,
    response: list("traces", storedTraceSchema),
  },
  leave: {
    method: "POST",
    path: "/admin/leave",
    auth: "operator",
    body: leaveBodySchema,
    response: v.object({ leaving: v.boolean() }),
  },
  drain: { method: "POST", path: "/admin/drain", auth: "operator", body: drainBodySchema, response: drainAnswer },
  undrain: { method: "POST", path: "/admin/undrain", auth: "operator", body: emptyBodySchema, response: drainAnswer },
  jobs: { method: "GET", path: "/jobs", auth: "operator", response: list("jobs", runningJobSchema) },
  peerSwim: { method: "POST", path: "/peer/swim", auth: "peer", body: swimEnvelopeSchema, response: swimAnswer },
  peerRaft: { method: "POST", path: "/peer/raft", auth: "peer", body: raftEnvelopeSchema, response: raftAnswer },
  peerRaftSnapshot: {
    method: "POST",
    path: "/peer/raft/snapshot",
    auth: "peer",
    body: snapshotChunkSchema,
    response: raftAnswer,
  },
  election: { method: "GET", path: "/election", auth: "operator", response: electionViewSchema },
  electionTransfer: {
    method: "POST",
    path: "/admin/election/transfer",
    auth: "operator",
    body: transferBodySchema,
    response: v.object({ transferring: v.string() }),
  },
  electionStepDown: {
    method: "POST",
    path: "/admin/election/step-down",
    auth: "operator",
    body: emptyBodySchema,
    response: v.object({ steppingDown: v.boolean() }),
  },
  voters: {
    method: "POST",
    path: "/admin/voters",
    auth: "operator",
    body: votersBodySchema,
    response: votersChangedSchema,
  },
  kvSet: { method: "POST", path: "/kv", auth: "operator", body: kvSetPayload, response: logPositionSchema },
  workAdd: { method: "POST", path: "/work", auth: "operator", body: workItemInputSchema, response: workAddedSchema },
  workBatch: {
    method: "POST",
    path: "/work/batch",
    auth: "operator",
    body: workBatchSchema,
    response: submittedSchema,
  },
  workList: {
    method: "GET",
    path: "/work",
    auth: "operator",
    query: workListQuerySchema,
    response: list("items", workItemSchema),
  },
  workStatus: { method: "GET", path: "/work/status", auth: "operator", response: workStatusSchema },
  workPopulator: {
    method: "GET",
    path: "/work/populator",
    auth: "operator",
    response: v.object({ wanted: v.array(v.unknown()), note: v.string() }),
  },
  workHistory: {
    method: "GET",
    path: "/work/history",
    auth: "operator",
    query: workHistoryQuerySchema,
    response: list("history", workHistoryRowSchema),
  },
  workNode: {
    method: "GET",
    path: "/work/node/:id",
    auth: "operator",
    response: v.object({ node: v.string(), items: v.array(workItemSchema) }),
  },
  workGet: { method: "GET", path: "/work/:id", auth: "operator", response: workItemViewSchema },
  workCancel: {
    method: "POST",
    path: "/work/:id/cancel",
    auth: "operator",
    body: cancelBodySchema,
    response: reportAnswerSchema,
  },
  peerWorkClaim: {
    method: "POST",
    path: "/peer/work/claim",
    auth: "peer",
    body: claimBodySchema,
    response: list("claims", claimSchema),
  },
  peerWorkStart: {
    method: "POST",
    path: "/peer/work/:id/start",
    auth: "peer",
    body: reportBodySchema,
    response: reportAnswerSchema,
  },
  peerWorkHeartbeat: {
    method: "POST",
    path: "/peer/work/:id/heartbeat",
    auth: "peer",
    body: reportBodySchema,
    response: reportAnswerSchema,
  },
  peerWorkComplete: {
    method: "POST",
    path: "/peer/work/:id/complete",
    auth: "peer",
    body: reportBodySchema,
    response: reportAnswerSchema,
  },
  peerWorkFail: {
    method: "POST",
    path: "/peer/work/:id/fail",
    auth: "peer",
    body: reportBodySchema,
    response: reportAnswerSchema,
  },
  kvGet: { method: "GET", path: "/kv", auth: "operator", query: kvGetQuerySchema, response: kvValueSchema },
  runs: { method: "GET", path: "/runs", auth: "operator", response: list("runs", runSummarySchema) },
  run: { method: "GET", path: "/runs/:name", auth: "operator", response: runViewSchema },
  runModels: { method: "GET", path: "/runs/:name/models", auth: "operator", response: list("models", modelViewSchema) },
  runElo: { method: "GET", path: "/runs/:name/elo", auth: "operator", response: eloTableSchema },
  runAnalytics: { method: "GET", path: "/runs/:name/analytics", auth: "operator", response: runAnalyticsSchema },
  runHistory: {
    method: "GET",
    path: "/runs/:name/history",
    auth: "operator",
    query: runHistoryQuerySchema,
    response: list("history", runHistoryRowSchema),
  },
  runPause: {
    method: "POST",
    path: "/runs/:name/pause",
    auth: "operator",
    body: runActionBodySchema,
    response: runStepAnswerSchema,
  },
  runResume: {
    method: "POST",
    path: "/runs/:name/resume",
    auth: "operator",
    body: runActionBodySchema,
    response: runStepAnswerSchema,
  },
  runPromote: {
    method: "POST",
    path: "/runs/:name/promote",
    auth: "operator",
    body: runPromoteBodySchema,
    response: runStepAnswerSchema,
  },
  runAbtests: {
    method: "GET",
    path: "/runs/:name/abtests",
    auth: "operator",
    response: list("abtests", evaluationViewSchema),
  },
  runAbtestStart: {
    method: "POST",
    path: "/runs/:name/abtests",
    auth: "operator",
    body: abtestBodySchema,
    response: evaluationRowSchema,
  },
  runTournaments: {
    method: "GET",
    path: "/runs/:name/tournaments",
    auth: "operator",
    response: list("tournaments", evaluationViewSchema),
  },
  runTournamentStart: {
    method: "POST",
    path: "/runs/:name/tournaments",
    auth: "operator",
    body: tournamentBodySchema,
    response: evaluationRowSchema,
  },
  evaluationCancel: {
    method: "POST",
    path: "/evaluations/:id/cancel",
    auth: "operator",
    body: runActionBodySchema,
    response: evaluationRowSchema,
  },
  runRollback: {
    method: "POST",
    path: "/runs/:name/rollback",
    auth: "operator",
    body: runActionBodySchema,
    response: runStepAnswerSchema,
  },
  manifest: {
    method: "GET",
    path: "/manifest",
    auth: "operator",
    query: manifestQuerySchema,
    summary: "One category's manifest (?category=), or every category's digest",
    response: v.union([manifestSchema, list("status", categoryStatusSchema)]),
  },
  syncStatus: { method: "GET", path: "/sync/status", auth: "operator", response: syncStatusSchema },
  syncSession: { method: "GET", path: "/sync/sessions/:id", auth: "operator", response: syncSessionStatusSchema },
  syncStart: {
    method: "POST",
    path: "/sync/start",
    auth: "operator",
    body: syncStartBodySchema,
    response: list("sessions", syncSessionStatusSchema),
  },
  peerManifest: { method: "GET", path: "/peer/manifest/:category", auth: "peer", response: manifestSchema },
  peerFile: {
    method: "GET",
    path: "/peer/files/:sha256",
    auth: "peer",
    params: sha256Params,
    summary: "A file's bytes (Range requests for pieces)",
    produces: "application/octet-stream",
  },
  peerFilePieces: {
    method: "GET",
    path: "/peer/files/:sha256/pieces",
    auth: "peer",
    params: sha256Params,
    response: pieceMapSchema,
  },
  peerRelay: {
    method: "GET",
    path: "/peer/relay",
    auth: "peer",
    query: relayConnectQuerySchema,
    response: v.object({ node: v.string(), lane: relayConnectQuerySchema.entries.lane }),
    summary: "A node behind NAT opens a relay lane here (then upgraded to a WebSocket)",
  },
} as const satisfies Record<string, RouteSpec>;

export type RouteName = keyof typeof ROUTES;

/**
 * The one peer route a request may be signed for "any node": membership, which a joining node sends to a
 * seed's address before it knows the seed's id. Its messages are idempotent, so a replay to another node
 * changes nothing.
 */
export function acceptsAnyDestination(pathname: string): boolean {
  return pathname === ROUTES.peerSwim.path;
}

const OPEN_PATHS = new Set<string>(Object.values(ROUTES).flatMap((r) => (r.auth === "none" ? [r.path] : [])));

/** "session": the dashboard under /ui, which checks its own login cookie and CSRF tokens (src/ui/). */
export function authFor(pathname: string): Auth | "session" {
  if (OPEN_PATHS.has(pathname.replace(/\/+$/, ""))) return "none";
  if (pathname === "/ui" || pathname.startsWith("/ui/")) return "session";
  return pathname.startsWith("/peer/") ? "peer" : "operator";
}
