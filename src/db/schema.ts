import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Small durable facts about this node (its incarnation, cluster name). */
export const nodeMeta = sqliteTable("node_meta", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
});

/** Every peer this node has heard of, so a restarted node remembers its cluster. */
export const peers = sqliteTable("peers", {
  id: text("id").primaryKey(),
  address: text("address").notNull(),
  incarnation: integer("incarnation").notNull(),
  state: text("state", { enum: ["alive", "suspect", "dead", "left"] }).notNull(),
  stateSince: integer("state_since").notNull(),
  lastSeenAt: integer("last_seen_at").notNull(),
  info: text("info", { mode: "json" }),
});

/** Every transition of every state machine in the node, bounded by row count. */
export const traces = sqliteTable(
  "traces",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    machine: text("machine").notNull(),
    instance: text("instance").notNull(),
    from: text("from_state"),
    to: text("to_state").notNull(),
    event: text("event").notNull(),
    cause: text("cause"),
    at: integer("at").notNull(),
  },
  (t) => [index("traces_machine_instance").on(t.machine, t.instance, t.seq), index("traces_at").on(t.at)],
);

/** The Raft log: one row per entry. */
export const raftLog = sqliteTable("raft_log", {
  index: integer("idx").primaryKey(),
  term: integer("term").notNull(),
  command: text("command", { mode: "json" }).notNull(),
});

/** A replicated key-value register: the first piece of replicated cluster state (`kv.set`). */
export const kv = sqliteTable("kv", {
  key: text("key").primaryKey(),
  value: text("value", { mode: "json" }),
  index: integer("idx").notNull(),
  term: integer("term").notNull(),
});

/** The replicated work queue: one row per submitted item, its lifecycle state and machine context. */
export const workItems = sqliteTable(
  "work_items",
  {
    id: text("id").primaryKey(),
    type: text("type").notNull(),
    priority: integer("priority").notNull(),
    config: text("config", { mode: "json" }).notNull(),
    requirements: text("requirements", { mode: "json" }).notNull(),
    dependsOn: text("depends_on", { mode: "json" }).$type<string[]>().notNull(),
    timeoutMs: integer("timeout_ms").notNull(),
    state: text("state").notNull(),
    context: text("context", { mode: "json" }).notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    /** Log index of the submission: the queue's stable order among equal priorities. */
    seq: integer("seq").notNull(),
  },
  // The claim's order: highest priority first, then first submitted; SQLite walks this index without sorting.
  // The queue's counts by state and type (status, the dashboard) are read from the second, never from the rows.
  (t) => [
    index("work_items_claim_order").on(t.state, sql`${t.priority} DESC`, t.seq),
    index("work_items_state_type").on(t.state, t.type),
  ],
);

/** Every transition of every work item, with its cause and the term of the leader that ordered it. */
export const workHistory = sqliteTable(
  "work_history",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    itemId: text("item_id").notNull(),
    from: text("from_state"),
    to: text("to_state").notNull(),
    event: text("event").notNull(),
    cause: text("cause"),
    node: text("node"),
    term: integer("term").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [index("work_history_item").on(t.itemId, t.seq)],
);

/** This node's reports to the leader, kept until acknowledged (local, not replicated). */
export const workOutbox = sqliteTable("work_outbox", {
  seq: integer("seq").primaryKey({ autoIncrement: true }),
  itemId: text("item_id").notNull(),
  kind: text("kind", { enum: ["start", "heartbeat", "complete", "fail"] }).notNull(),
  body: text("body", { mode: "json" }).notNull(),
  createdAt: integer("created_at").notNull(),
});

/** Processes this node started for work items (local): what a restarted node reaps. */
export const localJobs = sqliteTable("local_jobs", {
  itemId: text("item_id").primaryKey(),
  leaseId: text("lease_id").notNull(),
  pid: integer("pid").notNull(),
  startedAt: integer("started_at").notNull(),
  logFile: text("log_file").notNull(),
});

/** This node's index of its data roots: one row per file, so only changed files are hashed again. */
export const dataFiles = sqliteTable(
  "data_files",
  {
    category: text("category").notNull(),
    path: text("path").notNull(),
    size: integer("size").notNull(),
    mtimeMs: integer("mtime_ms").notNull(),
    sha256: text("sha256").notNull(),
    /** The SHA-256 of each PIECE_BYTES piece, as a JSON array of hex strings. */
    pieces: text("pieces", { mode: "json" }).$type<string[]>().notNull(),
  },
  (t) => [primaryKey({ columns: [t.category, t.path] }), index("data_files_sha").on(t.sha256)],
);

/** Training runs (replicated): each run's loop machine, as its state and context, and the policy it runs under. */
export const runs = sqliteTable("runs", {
  name: text("name").primaryKey(),
  state: text("state").notNull(),
  context: text("context", { mode: "json" }).notNull(),
  /** The `[runs.<name>]` policy the leader last configured, as JSON: every voter applies events under the same one. */
  policy: text("policy", { mode: "json" }).notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

/** Every transition of every run's loop, with its cause and the term of the leader that ordered it (replicated). */
export const runHistory = sqliteTable(
  "run_history",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    run: text("run").notNull(),
    from: text("from_state"),
    to: text("to_state").notNull(),
    event: text("event").notNull(),
    cause: text("cause"),
    /** What the event carried worth keeping: a decision's evidence, a model, counts. */
    detail: text("detail", { mode: "json" }),
    term: integer("term").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [index("run_history_run").on(t.run, t.seq)],
);

/** The model registry (replicated): every model a run made, by its file's SHA-256, and where it stands. */
export const models = sqliteTable(
  "models",
  {
    id: text("id").primaryKey(),
    run: text("run").notNull(),
    generation: integer("generation").notNull(),
    parent: text("parent"),
    /** The work item that wrote it (bootstrap or training), and the node that ran it. */
    itemId: text("item_id"),
    node: text("node"),
    /** Its file, relative to the run's models category folder on every node. */
    file: text("file").notNull(),
    state: text("state", { enum: ["candidate", "evaluating", "promoted", "rejected", "archived"] }).notNull(),
    metrics: text("metrics", { mode: "json" }),
    createdAt: integer("created_at").notNull(),
    decidedAt: integer("decided_at"),
  },
  (t) => [index("models_run").on(t.run, t.generation)],
);

/** Match results per ordered pair of players (models by id, or a baseline name), from the first player's side. */
export const matchResults = sqliteTable(
  "match_results",
  {
    run: text("run").notNull(),
    a: text("a").notNull(),
    b: text("b").notNull(),
    wins: integer("wins").notNull(),
    draws: integer("draws").notNull(),
    losses: integer("losses").notNull(),
  },
  (t) => [primaryKey({ columns: [t.run, t.a, t.b] })],
);

/** On-demand evaluations of a run's models (replicated): A/B tests (a sequential test) and round-robin tournaments. */
export const evaluations = sqliteTable(
  "evaluations",
  {
    id: text("id").primaryKey(),
    run: text("run").notNull(),
    kind: text("kind", { enum: ["abtest", "tournament"] }).notNull(),
    /** Model ids (and baselines for a tournament), in the order the operator gave them. */
    players: text("players", { mode: "json" }).$type<string[]>().notNull(),
    /** The test's bounds and sizes: games per pairing, pairs per item, SPRT bounds. */
    params: text("params", { mode: "json" }).notNull(),
    state: text("state", { enum: ["running", "done", "cancelled"] }).notNull(),
    /** abtest: pentanomial pairs from the first player's side; tournament: games per ordered pairing. */
    results: text("results", { mode: "json" }).notNull(),
    /** Match items already counted (a duplicated completion counts once). */
    counted: text("counted", { mode: "json" }).$type<string[]>().notNull(),
    outcome: text("outcome", { mode: "json" }),
    cause: text("cause"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("evaluations_run").on(t.run, t.createdAt)],
);
