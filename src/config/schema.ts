import * as v from "valibot";
import { intIn } from "../net/bounds.ts";
import { runPolicySchema } from "../runs/policy.ts";
import { durationSchema } from "./duration.ts";
import { templateProblems } from "./job-template.ts";
import { TIMING_PROFILES } from "./timing.ts";

export const DEFAULT_PORT = 8770;

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

export const nodeIdSchema = v.pipe(
  v.string(),
  v.regex(NODE_ID, "a node id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
);

/** "host" or "host:port"; normalised to "host:port" with the default port. */
export const addressSchema = v.pipe(
  v.string(),
  v.regex(HOST_PORT, 'an address "host:port" (port optional, default 8770)'),
  v.transform((s) => (/:\d{1,5}$/.test(s) && !s.endsWith("]") ? s : `${s}:${DEFAULT_PORT}`)),
  v.check((s) => {
    const port = Number(s.slice(s.lastIndexOf(":") + 1));
    return port > 0 && port < 65536;
  }, "a port between 1 and 65535"),
);

function duplicates(values: string[]): string[] {
  return [...new Set(values.filter((x, i) => values.indexOf(x) !== i))];
}

export const CAPABILITIES = ["selfplay", "training", "gauntlet", "tournament", "export"] as const;
const capabilitySchema = v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a capability name (lowercase)"));

const nodeSchema = v.strictObject({
  id: nodeIdSchema,
  address: addressSchema,
  /**
   * Address to bind; defaults to the host of `address` (0.0.0.0 is allowed). "none" binds nothing: a node behind
   * NAT that is reached only through its relays.
   */
  listen: v.optional(v.union([v.literal("none"), addressSchema])),
  voter: v.optional(v.boolean(), false),
  capabilities: v.optional(v.array(capabilitySchema), []),
  slots: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1024))),
  data_dir: v.optional(v.pipe(v.string(), v.minLength(1))),
  nat: v.optional(v.boolean(), false),
});

export const jobTemplateSchema = v.strictObject({
  /**
   * argv; an entry that is exactly "{key}" becomes the item's config value as one argument ("{output_dir}" the job's
   * own folder). Every value is also in the environment as P2P_PARAM_<KEY>, which is how a shell script reads it.
   */
  command: v.pipe(
    v.array(v.string()),
    v.minLength(1, "a command of at least one word"),
    v.rawCheck(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      const command = dataset.value;
      for (const { index, expected } of templateProblems(command)) {
        addIssue({
          message: expected,
          received: JSON.stringify(command[index]),
          path: [{ type: "array", origin: "value", input: command, key: index, value: command[index] }],
        });
      }
    }),
  ),
  timeout: v.optional(durationSchema, "1h"),
  slots: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 1),
  requires: v.optional(
    v.strictObject({
      gpu: v.optional(v.boolean()),
      gpu_memory_gb: v.optional(v.pipe(v.number(), v.minValue(0))),
      disk_gb: v.optional(v.pipe(v.number(), v.minValue(0))),
      /** Free memory the node must have when it claims an item of this type. */
      memory_gb: v.optional(v.pipe(v.number(), v.minValue(0))),
    }),
    {},
  ),
  env: v.optional(v.record(v.string(), v.string()), {}),
  cwd: v.optional(v.string()),
});

export type JobTemplate = v.InferOutput<typeof jobTemplateSchema>;

/** A data category: files under `path` matching `globs`, and which nodes should hold a copy. */
export const dataCategorySchema = v.strictObject({
  /** Folder of this category's files; "{id}" is the node id; relative paths are relative to the cluster file. */
  path: v.pipe(v.string(), v.minLength(1)),
  globs: v.optional(v.pipe(v.array(v.pipe(v.string(), v.minLength(1))), v.minLength(1)), ["**/*"]),
  /** Who should hold a copy: "all", "none" (indexed and served, never pushed), or capabilities (any of them). */
  to: v.optional(
    v.union([
      v.picklist(["all", "none"]),
      v.pipe(v.array(capabilitySchema), v.minLength(1, "at least one capability")),
    ]),
    "none",
  ),
  /** Nodes that finished a file serve it on, so the origin sends about one copy whatever the cluster size. */
  swarm: v.optional(v.boolean(), false),
  /** Largest per-node deterministic delay before adopting a new file, so nodes do not all pull at once. */
  stagger: v.optional(v.union([v.literal(0), durationSchema]), 0),
});

export type DataCategoryEntry = v.InferOutput<typeof dataCategorySchema>;

/** "100MB/s", "1.5GB/s", "500KB/s", or 0 for unlimited; bytes per second. */
export function parseRate(input: string | number): number {
  if (typeof input === "number") return input;
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)\/s$/i.exec(input.trim());
  if (!m) return Number.NaN;
  const unit = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 }[(m[2] as string).toUpperCase() as "B" | "KB" | "MB" | "GB"];
  return Math.round(Number(m[1]) * unit);
}

const rateSchema = v.pipe(
  v.union([v.number(), v.string()]),
  v.transform(parseRate),
  v.check((r) => Number.isFinite(r) && r >= 0, 'a rate such as "100MB/s", or 0 for unlimited'),
);

export const syncSchema = v.strictObject({
  /** Transfers this node runs at once (each may draw from several sources). */
  max_transfers: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(64)), 4),
  /** Requests this node serves at once; more get 503 with Retry-After. */
  max_uploads: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(256)), 8),
  /** This node's download and upload rate limits (0 = unlimited). */
  download_rate: v.optional(rateSchema, 0),
  upload_rate: v.optional(rateSchema, 0),
  /** A transfer that would fill the disk past this percentage is refused. */
  disk_max_percent: v.optional(v.pipe(v.number(), v.minValue(1), v.maxValue(100)), 90),
  /** How often the data roots are rescanned for changes. */
  scan_interval: v.optional(durationSchema, "10s"),
});

const timingSchema = v.picklist(Object.keys(TIMING_PROFILES) as (keyof typeof TIMING_PROFILES)[]);

export const clusterFileSchema = v.strictObject({
  cluster: v.strictObject({
    name: v.pipe(
      v.string(),
      v.regex(/^[A-Za-z0-9._-]{1,64}$/, "a cluster name: 1-64 letters, digits, '.', '_' or '-'"),
    ),
    secret_file: v.optional(v.pipe(v.string(), v.minLength(1)), "cluster.secret"),
    token_file: v.optional(v.pipe(v.string(), v.minLength(1)), "operator.token"),
    timing: v.optional(timingSchema, "lan"),
    /** Where a node looks for the cluster at start. Defaults to the other nodes listed here. */
    seeds: v.optional(v.array(addressSchema)),
    /** Default data dir; "{id}" is replaced by the node id. Relative paths are relative to this file. */
    data_dir: v.optional(v.pipe(v.string(), v.minLength(1)), ".data/{id}"),
    log_level: v.optional(v.picklist(["debug", "info", "warn", "error"]), "info"),
  }),
  /** The work queue: backpressure limits on queued items, and the lease a claim gets. */
  work: v.optional(
    v.strictObject({
      soft_limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 10_000),
      hard_limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 50_000),
      lease: v.optional(durationSchema),
      /** Finished items (completed, cancelled, dead-lettered) kept with their history; older ones are pruned. */
      keep_finished: v.optional(intIn(100, 100_000_000), 20_000),
    }),
    {},
  ),
  /** Data sync: limits, then the categories of files and where each goes. */
  sync: v.optional(syncSchema, {}),
  data: v.optional(
    v.record(v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a category name")), dataCategorySchema),
    {},
  ),
  /** Job templates by work type: how a node runs an item of that type. */
  jobs: v.optional(
    v.record(v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a job type name")), jobTemplateSchema),
    {},
  ),
  /** Training runs: each a self-play -> train -> gate -> promote loop over the job templates above (docs/JOBS.md). */
  runs: v.optional(
    v.pipe(
      v.record(v.pipe(v.string(), v.regex(/^[a-z][a-z0-9_-]{0,31}$/, "a run name")), runPolicySchema),
      v.check((r) => Object.keys(r).length <= 64, "at most 64 runs"),
    ),
    {},
  ),
  nodes: v.pipe(
    v.array(nodeSchema),
    v.minLength(1, "at least one [[nodes]] entry"),
    v.check(
      (ns) => duplicates(ns.map((n) => n.id)).length === 0,
      (issue) =>
        `unique node ids (duplicated: ${duplicates((issue.input as { id: string }[]).map((n) => n.id)).join(", ")})`,
    ),
    v.check(
      (ns) => duplicates(ns.map((n) => n.address)).length === 0,
      (issue) =>
        `unique node addresses (duplicated: ${duplicates((issue.input as { address: string }[]).map((n) => n.address)).join(", ")})`,
    ),
  ),
});

export type ClusterFile = v.InferOutput<typeof clusterFileSchema>;
export type NodeEntry = ClusterFile["nodes"][number];
