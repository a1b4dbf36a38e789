import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parseClusterFile } from "../config/load.ts";
import { CallError, call } from "../net/client.ts";
import type { RouteSpec } from "../net/route-table.ts";

/** Flags every command that talks to a node shares. */
export const targetArgs = {
  url: { type: "string", description: "Node URL (default: the --node's address from --config; env P2P_URL)" },
  token: { type: "string", description: "Operator token (default: token_file of --config; env P2P_TOKEN)" },
  config: { type: "string", description: "cluster.toml (env P2P_CONFIG)", default: "cluster.toml" },
  node: { type: "string", description: "Which node of --config to ask (default: the first; env P2P_NODE)" },
  json: { type: "boolean", description: "Print JSON instead of a table", default: false },
} as const;

export interface Target {
  url: string;
  token: string;
}

export function resolveTarget(args: { url?: string; token?: string; config?: string; node?: string }): Target {
  const env = process.env;
  let url = args.url ?? env.P2P_URL;
  let token = args.token ?? env.P2P_TOKEN;
  if (!url || !token) {
    const path = resolve(
      env.P2P_CONFIG && args.config === "cluster.toml" ? env.P2P_CONFIG : (args.config ?? "cluster.toml"),
    );
    const file = parseClusterFile(path);
    const nodeId = args.node ?? env.P2P_NODE;
    const entry = nodeId ? file.nodes.find((n) => n.id === nodeId) : file.nodes[0];
    if (!entry) throw new Error(`${path}: nodes: expected an entry with id "${nodeId}"`);
    url ??= `http://${entry.address}`;
    if (!token) {
      const tokenPath = isAbsolute(file.cluster.token_file)
        ? file.cluster.token_file
        : resolve(dirname(path), file.cluster.token_file);
      if (!existsSync(tokenPath)) throw new Error(`${path}: cluster.token_file: no file at ${tokenPath}`);
      token = readFileSync(tokenPath, "utf8").trim();
    }
  }
  return { url, token };
}

export async function ask<Spec extends RouteSpec>(
  target: Target,
  spec: Spec,
  opts: {
    query?: Record<string, string | number | undefined>;
    body?: unknown;
    params?: Record<string, string>;
    timeoutMs?: number;
  } = {},
): Promise<unknown> {
  const send = (url: string) =>
    call(
      url,
      spec,
      { kind: "operator", token: target.token },
      { query: opts.query, body: opts.body as never, params: opts.params, timeoutMs: opts.timeoutMs ?? 5_000 },
    );
  try {
    return await send(target.url);
  } catch (e) {
    // A follower names the leader (421): ask it instead, once.
    const leader =
      e instanceof CallError && e.status === 421 ? (e.body as { leader?: { address?: string } })?.leader : null;
    if (!leader?.address) throw e;
    return send(`http://${leader.address}`);
  }
}

/** Prints a one-line error for the failures an operator can act on, and exits non-zero. */
export function fail(e: unknown): never {
  const message = e instanceof CallError || e instanceof Error ? e.message : String(e);
  console.error(`error: ${message}`);
  process.exit(1);
}
