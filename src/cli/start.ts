import { mkdirSync, openSync } from "node:fs";
import { join, resolve } from "node:path";
import { defineCommand } from "citty";
import { Client } from "../client/client.ts";
import { ConfigError } from "../config/errors.ts";
import { envOverrides, loadNodeConfig, mergeOverrides, parseClusterFile } from "../config/load.ts";
import { DataDirError } from "../db/client.ts";
import { startNode } from "../node/node.ts";
import { createLogger } from "../observability/log.ts";
import { selfArgv } from "../work/job-command.ts";
import { ensureSecrets } from "./init.ts";
import { tellRuns } from "./run-feed.ts";
import { resolveTarget } from "./target.ts";

export const startCommand = defineCommand({
  meta: { name: "start", description: "Run this machine's node of the cluster" },
  args: {
    config: { type: "string", description: "cluster.toml (env P2P_CONFIG)", default: "cluster.toml" },
    node: { type: "string", description: "This node's id in the cluster file (env P2P_NODE)" },
    "data-dir": { type: "string", description: "State directory (env P2P_DATA_DIR)" },
    address: { type: "string", description: "Address others reach this node at (env P2P_ADDRESS)" },
    listen: { type: "string", description: "Address to bind (env P2P_LISTEN)" },
    seeds: { type: "string", description: "Comma-separated seed addresses (env P2P_SEEDS)" },
    timing: { type: "string", description: "Timing profile: lan | wan (env P2P_TIMING)" },
    "log-level": { type: "string", description: "debug | info | warn | error (env P2P_LOG_LEVEL)" },
  },
  async run({ args }) {
    const env = envOverrides();
    const configPath = args.config === "cluster.toml" && process.env.P2P_CONFIG ? process.env.P2P_CONFIG : args.config;
    let config: ReturnType<typeof loadNodeConfig>;
    try {
      config = loadNodeConfig(
        configPath,
        mergeOverrides(
          {
            node: args.node,
            dataDir: args["data-dir"],
            address: args.address,
            listen: args.listen,
            seeds: args.seeds
              ?.split(",")
              .map((s) => s.trim())
              .filter(Boolean),
            timing: args.timing,
            logLevel: args["log-level"],
          },
          env,
        ),
      );
    } catch (e) {
      if (e instanceof ConfigError) {
        console.error(`configuration error:\n${e.problems.map((p) => `  ${p}`).join("\n")}`);
        process.exit(2);
      }
      throw e;
    }
    const log = createLogger(config.logLevel, { node: config.nodeId });
    const node = await startNode(config, log).catch((e: unknown) => {
      if (!(e instanceof DataDirError)) throw e;
      console.error(`cannot start: ${e.message}`);
      process.exit(2);
    });
    const onSignal = (signal: string) => void node.leave(`signal ${signal}`);
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
    await node.stopped;
    process.exit(0);
  },
});

export const upCommand = defineCommand({
  meta: { name: "up", description: "Start every node of a local cluster file on this machine, until Ctrl-C" },
  args: {
    config: { type: "string", description: "cluster.toml", default: "cluster.toml" },
  },
  async run({ args }) {
    const path = resolve(args.config);
    const file = parseClusterFile(path);
    for (const created of ensureSecrets(path)) console.log(`created ${created} (mode 600)`);
    const logDir = resolve(path, "..", ".data");
    mkdirSync(logDir, { recursive: true });
    const children = file.nodes.map((n) => {
      const logFile = join(logDir, `${n.id}.log`);
      const out = openSync(logFile, "a");
      const child = Bun.spawn([...selfArgv(), "start", "--config", path, "--node", n.id], {
        stdout: out,
        stderr: out,
      });
      return { id: n.id, address: n.address, logFile, child };
    });
    const stop = () => {
      for (const c of children) c.child.kill("SIGTERM");
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);

    const target = resolveTarget({ config: path, node: file.nodes[0]?.id });
    const deadline = Date.now() + 30_000;
    let converged = false;
    while (!converged && Date.now() < deadline) {
      const views = await Promise.all(
        children.map((c) =>
          new Client({ url: `http://${c.address}`, token: target.token })
            .call("status", { timeoutMs: 1_000 })
            .catch(() => null),
        ),
      );
      converged = views.every((s) => s?.peers.filter((p) => p.state === "alive").length === children.length - 1);
      if (children.some((c) => c.child.exitCode !== null)) break;
      if (!converged) await Bun.sleep(200);
    }
    const failed = children.filter((c) => c.child.exitCode !== null);
    if (failed.length > 0) {
      for (const c of failed) console.error(`node ${c.id} exited with ${c.child.exitCode}; see ${c.logFile}`);
      stop();
      process.exit(1);
    }
    console.log(
      converged
        ? `cluster "${file.cluster.name}" is up: ${children.length} nodes, all alive`
        : "cluster started, not yet converged",
    );
    for (const c of children) console.log(`  ${c.id}  http://${c.address}/status   log: ${c.logFile}`);
    console.log(`operator token: ${file.cluster.token_file} (next to ${path})`);
    console.log(
      `try: p2p-orchestrator status --config ${args.config}   |   p2p-orchestrator trace --config ${args.config}`,
    );
    console.log("Ctrl-C stops every node (each announces a graceful leave)");
    if (Object.keys(file.runs).length > 0) {
      console.log(
        `training runs: ${Object.keys(file.runs).join(", ")} (details: p2p-orchestrator runs --config ${args.config}; Elo: elo <run>)`,
      );
    }
    let exited = false;
    const done = Promise.all(children.map((c) => c.child.exited)).then(() => {
      exited = true;
    });
    void tellRuns(
      new Client(target),
      (line) => console.log(line),
      () => exited,
    );
    await done;
  },
});
