import { existsSync, readFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, isAbsolute, resolve } from "node:path";
import * as v from "valibot";
import { type RunPolicy, runPolicyProblems } from "../runs/policy.ts";
import { ConfigError, describeIssues } from "./errors.ts";
import {
  addressSchema,
  type ClusterFile,
  clusterFileSchema,
  type JobTemplate,
  type NodeEntry,
  nodeIdSchema,
} from "./schema.ts";
import { deriveTiming, TIMING_PROFILES, type Timing, type TimingProfileName } from "./timing.ts";

/** Values that flags or P2P_* environment variables may override (flags win over env, env over the file). */
export interface Overrides {
  node?: string;
  dataDir?: string;
  address?: string;
  listen?: string;
  seeds?: string[];
  timing?: string;
  logLevel?: string;
}

export interface NodeConfig {
  readonly configPath: string;
  readonly clusterName: string;
  readonly nodeId: string;
  readonly address: string;
  readonly listenHost: string;
  /** null: the node binds no port (listen = "none", behind NAT, reached through relays). */
  readonly listenPort: number | null;
  readonly voter: boolean;
  readonly capabilities: readonly string[];
  readonly slots: number;
  readonly nat: boolean;
  readonly dataDir: string;
  readonly seeds: readonly string[];
  readonly secret: string;
  readonly token: string;
  readonly timing: Timing;
  readonly logLevel: "debug" | "info" | "warn" | "error";
  /** Every node the file lists (voters are decided from this, never from who seems alive). */
  readonly configuredNodes: readonly NodeEntry[];
  /** How this node runs each type of work. */
  readonly jobs: Readonly<Record<string, JobTemplate>>;
  /**
   * Queued items past `softLimit` are flagged, past `hardLimit` refused (429); a claim's lease lasts `leaseMs`;
   * finished items past `keepFinished` are pruned, oldest first.
   */
  readonly work: { softLimit: number; hardLimit: number; leaseMs: number; keepFinished: number };
  /** Data sync limits (rates in bytes per second, 0 = unlimited). */
  readonly sync: SyncLimits;
  /** Data categories with their folders resolved for this node. */
  readonly data: readonly DataCategory[];
  /** Training runs (`[runs.<name>]`), as the file states their policies. */
  readonly runs: Readonly<Record<string, RunPolicy>>;
}

export interface SyncLimits {
  maxTransfers: number;
  maxUploads: number;
  downloadRate: number;
  uploadRate: number;
  diskMaxPercent: number;
  scanIntervalMs: number;
}

export interface DataCategory {
  readonly name: string;
  /** Absolute folder of this node's files of this category. */
  readonly root: string;
  readonly globs: readonly string[];
  readonly to: "all" | "none" | readonly string[];
  readonly swarm: boolean;
  readonly staggerMs: number;
}

export function envOverrides(env: Record<string, string | undefined> = process.env): Overrides {
  const seeds = env.P2P_SEEDS?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    node: env.P2P_NODE,
    dataDir: env.P2P_DATA_DIR,
    address: env.P2P_ADDRESS,
    listen: env.P2P_LISTEN,
    seeds: seeds?.length ? seeds : undefined,
    timing: env.P2P_TIMING,
    logLevel: env.P2P_LOG_LEVEL,
  };
}

/** Flags first, then environment: the first defined value wins per key. */
export function mergeOverrides(...layers: Overrides[]): Overrides {
  const out: Overrides = {};
  for (const layer of layers.reverse()) {
    for (const [k, val] of Object.entries(layer)) if (val !== undefined) (out as Record<string, unknown>)[k] = val;
  }
  return out;
}

export function parseClusterFile(path: string): ClusterFile {
  const where = path;
  if (!existsSync(path)) throw new ConfigError([`${where}: file not found (run "p2p-orchestrator init" to write one)`]);
  let raw: unknown;
  try {
    raw = Bun.TOML.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError([`${where}: not valid TOML: ${(e as Error).message}`]);
  }
  const parsed = v.safeParse(clusterFileSchema, raw);
  if (!parsed.success) throw new ConfigError(describeIssues(where, parsed.issues));
  const file = parsed.output;
  const runProblems = Object.entries(file.runs).flatMap(([name, run]) =>
    runPolicyProblems(name, run, file.jobs, Object.keys(file.data)),
  );
  if (runProblems.length > 0) {
    throw new ConfigError(runProblems.map((p) => `${where}: ${p.path}: expected ${p.expected}, found ${p.found}`));
  }
  return file;
}

function overrideValue<T>(where: string, schema: v.GenericSchema<unknown, T>, value: unknown): T {
  const parsed = v.safeParse(schema, value);
  if (!parsed.success) throw new ConfigError(describeIssues(where, parsed.issues));
  return parsed.output;
}

function readSecretFile(where: string, path: string, minLength: number): string {
  if (!existsSync(path)) {
    throw new ConfigError([`${where}: expected a readable file at ${path}, found none (run "p2p-orchestrator init")`]);
  }
  const text = readFileSync(path, "utf8").trim();
  if (text.length < minLength) {
    throw new ConfigError([`${where}: expected at least ${minLength} characters in ${path}, found ${text.length}`]);
  }
  if (process.platform !== "win32" && (statSync(path).mode & 0o077) !== 0) {
    console.error(`warning: ${path} is readable by group or others; chmod 600 it`);
  }
  return text;
}

export function loadNodeConfig(configPath: string, overrides: Overrides = {}): NodeConfig {
  const path = resolve(configPath);
  const base = dirname(path);
  const file = parseClusterFile(path);
  /** Names where a value came from: the flag/env override when there is one, else the file's key. */
  const from = (key: string, flag: string, env: string, overridden: boolean) =>
    overridden ? `${flag} / ${env}` : `${path}: ${key}`;
  const nodeId = overrideValue(
    from("nodes[0].id", "--node", "P2P_NODE", overrides.node !== undefined),
    nodeIdSchema,
    overrides.node ?? file.nodes[0]?.id,
  );
  const entry = file.nodes.find((n) => n.id === nodeId);
  const addressRaw = overrides.address ?? entry?.address;
  if (addressRaw === undefined) {
    throw new ConfigError([
      `${path}: nodes: expected an entry with id "${nodeId}" (or --address for a node not listed), found ids ${file.nodes.map((n) => n.id).join(", ")}`,
    ]);
  }
  const address = overrideValue(
    from(`address of ${nodeId}`, "--address", "P2P_ADDRESS", overrides.address !== undefined),
    addressSchema,
    addressRaw,
  );
  const listen = overrideValue(
    from(`listen of ${nodeId}`, "--listen", "P2P_LISTEN", overrides.listen !== undefined),
    v.union([v.literal("none"), addressSchema]),
    overrides.listen ?? entry?.listen ?? address,
  );
  if (listen === "none" && !(entry?.nat ?? false)) {
    throw new ConfigError([
      `${path}: listen of ${nodeId}: expected an address to bind; "none" only with nat = true (peers then reach the node through its relays), found "none"`,
    ]);
  }
  const split = listen.lastIndexOf(":");
  const timingName = overrideValue(
    from("cluster.timing", "--timing", "P2P_TIMING", overrides.timing !== undefined),
    v.picklist(Object.keys(TIMING_PROFILES) as TimingProfileName[]),
    overrides.timing ?? file.cluster.timing,
  );
  const logLevel = overrideValue(
    from("cluster.log_level", "--log-level", "P2P_LOG_LEVEL", overrides.logLevel !== undefined),
    v.picklist(["debug", "info", "warn", "error"] as const),
    overrides.logLevel ?? file.cluster.log_level,
  );
  const seedsRaw = overrides.seeds ?? file.cluster.seeds ?? file.nodes.map((n) => n.address);
  const seeds = seedsRaw
    .map((s, i) =>
      overrideValue(
        from(`cluster.seeds[${i}]`, "--seeds", "P2P_SEEDS", overrides.seeds !== undefined),
        addressSchema,
        s,
      ),
    )
    .filter((s) => s !== address);
  const dataDirRaw = (overrides.dataDir ?? entry?.data_dir ?? file.cluster.data_dir).replaceAll("{id}", nodeId);
  const inFileDir = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  if (entry?.nat && entry.voter) {
    // Every Raft message to it takes a relay's extra hop, and its votes and acknowledgements wait on two links.
    console.error(`warning: ${path}: node "${nodeId}" is behind NAT (nat = true) and a voter; prefer public voters`);
  }
  return {
    configPath: path,
    clusterName: file.cluster.name,
    nodeId,
    address,
    listenHost: listen === "none" ? "" : listen.slice(0, split).replace(/^\[|\]$/g, ""),
    listenPort: listen === "none" ? null : Number(listen.slice(split + 1)),
    voter: entry?.voter ?? false,
    capabilities: entry?.capabilities ?? [],
    slots: entry?.slots ?? availableParallelism(),
    nat: entry?.nat ?? false,
    // A --data-dir given on the command line is relative to where the command runs, like any path argument.
    dataDir: overrides.dataDir ? resolve(dataDirRaw) : inFileDir(dataDirRaw),
    seeds: [...new Set(seeds)],
    secret: readSecretFile(`${path}: cluster.secret_file`, inFileDir(file.cluster.secret_file), 32),
    token: readSecretFile(`${path}: cluster.token_file`, inFileDir(file.cluster.token_file), 16),
    timing: deriveTiming(timingName),
    logLevel,
    configuredNodes: file.nodes,
    jobs: file.jobs,
    runs: file.runs,
    work: {
      softLimit: file.work.soft_limit,
      hardLimit: Math.max(file.work.hard_limit, file.work.soft_limit),
      leaseMs: file.work.lease ?? deriveTiming(timingName).workLeaseMs,
      keepFinished: file.work.keep_finished,
    },
    sync: {
      maxTransfers: file.sync.max_transfers,
      maxUploads: file.sync.max_uploads,
      downloadRate: file.sync.download_rate,
      uploadRate: file.sync.upload_rate,
      diskMaxPercent: file.sync.disk_max_percent,
      scanIntervalMs: file.sync.scan_interval,
    },
    data: Object.entries(file.data).map(([name, c]) => ({
      name,
      root: inFileDir(c.path.replaceAll("{id}", nodeId)),
      globs: c.globs,
      to: c.to,
      swarm: c.swarm,
      staggerMs: c.stagger,
    })),
  };
}
