import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { Client } from "../client/client.ts";
import { parseClusterFile } from "../config/load.ts";
import { CallError } from "../net/client.ts";

/** Flags every command that talks to a node shares. */
export const targetArgs = {
  url: { type: "string", description: "Node URL (default: the --node's address from --config; env P2P_URL)" },
  token: { type: "string", description: "Operator token (default: token_file of --config; env P2P_TOKEN)" },
  config: { type: "string", description: "cluster.toml (env P2P_CONFIG)", default: "cluster.toml" },
  node: {
    type: "string",
    description:
      "Which node of --config to ask (default: the first; env P2P_NODE); one behind NAT through a public one",
  },
  json: { type: "boolean", description: "Print JSON instead of a table", default: false },
} as const;

export interface Target {
  url: string;
  token: string;
  /** The --node when it is behind NAT: `url` is then a public member of the file, which passes calls on to it. */
  relayTo?: string;
}

export function resolveTarget(args: { url?: string; token?: string; config?: string; node?: string }): Target {
  const env = process.env;
  let url = args.url ?? env.P2P_URL;
  let token = args.token ?? env.P2P_TOKEN;
  let relayTo: string | undefined;
  if (!url || !token) {
    const path = resolve(
      env.P2P_CONFIG && args.config === "cluster.toml" ? env.P2P_CONFIG : (args.config ?? "cluster.toml"),
    );
    const file = parseClusterFile(path);
    const nodeId = args.node ?? env.P2P_NODE;
    const entry = nodeId ? file.nodes.find((n) => n.id === nodeId) : file.nodes[0];
    if (!entry) throw new Error(`${path}: nodes: expected an entry with id "${nodeId}"`);
    if (!url && entry.nat) {
      // Nobody connects to a node behind NAT: its API is reached through a public member, which finds its relays.
      const door = file.nodes.find((n) => !n.nat);
      if (!door) throw new Error(`${path}: ${entry.id} is behind NAT and no member of the file is public`);
      url = `http://${door.address}`;
      relayTo = entry.id;
    }
    url ??= `http://${entry.address}`;
    if (!token) {
      const tokenPath = isAbsolute(file.cluster.token_file)
        ? file.cluster.token_file
        : resolve(dirname(path), file.cluster.token_file);
      if (!existsSync(tokenPath)) throw new Error(`${path}: cluster.token_file: no file at ${tokenPath}`);
      token = readFileSync(tokenPath, "utf8").trim();
    }
  }
  return relayTo ? { url, token, relayTo } : { url, token };
}

/** The typed client for the node the flags name. */
export function connect(args: Parameters<typeof resolveTarget>[0]): Client {
  return new Client(resolveTarget(args));
}

/** Prints a one-line error for the failures an operator can act on, and exits non-zero. */
export function fail(e: unknown): never {
  const message = e instanceof CallError || e instanceof Error ? e.message : String(e);
  console.error(`error: ${message}`);
  process.exit(1);
}
