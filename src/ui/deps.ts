import type { LeaderHint } from "../consensus/hints.ts";
import type { TraceStore } from "../db/traces.ts";
import type { NodeStatus } from "../node/status.ts";
import type { RunService } from "../runs/service.ts";
import type { SyncService } from "../sync/service.ts";
import type { WorkService } from "../work/service.ts";
import type { Worker } from "../work/worker.ts";
import type { Html } from "./html.ts";
import type { PageName } from "./layout.ts";

/** What the dashboard reads and does: the same in-process services the JSON routes use. */
export interface UiDeps {
  nodeId: string;
  /** The operator token: checked at login, and sent by this node when it forwards an action to another node. */
  token: string;
  /** This node's data dir: running jobs' logs are under it. */
  dataDir: string;
  status: () => NodeStatus;
  work: Pick<WorkService, "status" | "list" | "get" | "history" | "cancel">;
  runs: Pick<RunService, "list" | "get" | "elo" | "analytics" | "models" | "promote" | "rollback">;
  sync: Pick<SyncService, "status">;
  traces: Pick<TraceStore, "query">;
  /** The runs in the replicated state, by name (a cheap read; the run list itself plans every run). */
  runNames: () => string[];
  jobs: () => ReturnType<Worker["list"]>;
  /** Why this node is drained, or null. */
  drainReason: () => string | null;
  /** Drains this node with that reason (null: undrains). */
  setDrain: (reason: string | null) => string | null;
  /** Whether this node holds the replicated state (it is a voter). */
  holdsState: () => boolean;
  leaderHint: () => LeaderHint | null;
}

export interface PageContext {
  deps: UiDeps;
  query: URLSearchParams;
  csrf: string;
  now: number;
  /** A value read once per request, however many regions of the page use it. */
  once: <T>(key: string, read: () => T) => T;
  /** The run's Elo table, refitted only when its inputs changed. */
  elo: (run: string) => ReturnType<UiDeps["runs"]["elo"]>;
}

export interface Page {
  name: PageName;
  title: string;
  /** Seconds between refreshes of the live regions (a page may shorten it, as traces does when following). */
  poll: (ctx: PageContext) => number;
  /** Pages over replicated state say where it comes from (and show nothing on a node that holds none). */
  replicated: boolean;
  /** The whole page body; it places each live region with `region()`. */
  body: (ctx: PageContext) => Html;
  /** The live regions, each rendered alone for ?partial=<name>. */
  regions: Record<string, (ctx: PageContext) => Html>;
}
