import { defineCommand } from "citty";
import type { StoredTrace } from "../db/traces.ts";
import type { NodeStatus } from "../node/status.ts";
import { formatAge, formatBytes, table } from "./table.ts";
import { connect, fail, targetArgs } from "./target.ts";

function peersTable(status: NodeStatus): string {
  return table(
    [
      "ID",
      "ADDRESS",
      "STATE",
      "REACH",
      "RTT",
      "INC",
      "LAST SEEN",
      "CPUS",
      "LOAD",
      "MEM FREE",
      "DISK FREE",
      "GPUS",
      "CAPABILITIES",
    ],
    status.peers.map((p) => [
      p.id,
      p.address,
      p.resources?.draining !== undefined ? `${p.state}, drained` : p.state,
      p.reach,
      p.rttMs === null ? "-" : `${p.rttMs.toFixed(1)} ms`,
      p.incarnation,
      formatAge(p.lastSeenMs),
      p.resources?.cpu.count ?? "-",
      p.resources?.cpu.load1 ?? "-",
      p.resources ? formatBytes(p.resources.memory.freeBytes) : "-",
      p.resources ? formatBytes(p.resources.disk.freeBytes) : "-",
      p.resources?.gpus.length ?? "-",
      p.resources?.capabilities.join(",") ?? "-",
    ]),
  );
}

/** Behind NAT: the relays this node keeps. As a relay: whom it carries and how much. */
function relayLines(n: NodeStatus["node"]): string[] {
  const lines: string[] = [];
  if (n.relays) {
    const held = n.relays.map((r) => {
      const open = r.openMs === null ? "" : `, connected in ${r.openMs} ms`;
      return `${r.id} (${r.lanes.length > 0 ? r.lanes.join("+") : "no lane open"}${open})`;
    });
    lines.push(`behind NAT, reached through: ${held.length > 0 ? held.join(", ") : "no relay yet"}`);
  }
  const r = n.relaying;
  if (r) {
    const whom = r.nodes.length > 0 ? r.nodes.join(", ") : "no node now";
    lines.push(
      `relaying for ${whom}: ${r.requests} requests (${r.failed} unanswered), ` +
        `${formatBytes(r.bytesToNat)} to them, ${formatBytes(r.bytesFromNat)} from them, ${r.queueDepth} waiting`,
    );
  }
  return lines;
}

export const statusCommand = defineCommand({
  meta: { name: "status", description: "This node and what it knows of its peers" },
  args: targetArgs,
  async run({ args }) {
    try {
      const status = await connect(args).call("status");
      if (args.json) return console.log(JSON.stringify(status, null, 2));
      const n = status.node;
      console.log(`node ${n.id} (${n.role}) at ${n.address}, cluster ${n.cluster}, version ${n.version}`);
      console.log(`incarnation ${n.incarnation}, up ${formatAge(n.uptimeMs)}`);
      const counts = ["alive", "suspect", "dead", "left"].map(
        (s) => `${status.peers.filter((p) => p.state === s).length} ${s}`,
      );
      console.log(`peers: ${counts.join(", ")}`);
      for (const line of relayLines(n)) console.log(line);
      if (n.resources?.draining !== undefined) console.log(`drained: ${n.resources.draining} (undrain to claim work)`);
      console.log(`\n${peersTable(status)}`);
      const failures = [
        ...status.signatureFailures.inbound.map((f) => ({ ...f, way: `from ${f.peer}` })),
        ...status.signatureFailures.outbound.map((f) => ({ ...f, way: `to ${f.peer}` })),
      ];
      if (failures.length > 0) {
        console.log("\nsigned requests failing (wrong cluster.secret? an id used twice?):");
        for (const f of failures) {
          const where = f.address ? ` (${f.address})` : "";
          console.log(`  ${f.way}${where}: ${f.count}x, last ${formatAge(Date.now() - f.lastAt)} ago: ${f.reason}`);
        }
      }
    } catch (e) {
      fail(e);
    }
  },
});

export const peersCommand = defineCommand({
  meta: { name: "peers", description: "The peers this node knows, their state and resources" },
  args: targetArgs,
  async run({ args }) {
    try {
      const status = await connect(args).call("status");
      console.log(args.json ? JSON.stringify(status.peers, null, 2) : peersTable(status));
    } catch (e) {
      fail(e);
    }
  },
});

function traceLine(t: StoredTrace): string {
  const at = new Date(t.at).toISOString();
  return `${at}  ${t.machine}/${t.instance}  ${t.from ?? "(new)"} -> ${t.to}  on ${t.event}${t.cause ? `  (${t.cause})` : ""}`;
}

export const traceCommand = defineCommand({
  meta: { name: "trace", description: "State-machine transitions and their causes (why is this peer dead?)" },
  args: {
    ...targetArgs,
    machine: {
      type: "string",
      description: "Only this machine: peer, raft, sync, job or run (jobs and runs are listed only here)",
    },
    instance: { type: "string", description: "Only this instance (e.g. a peer id)" },
    limit: { type: "string", description: "How many rows", default: "50" },
    follow: { type: "boolean", description: "Keep printing new transitions", default: false },
  },
  async run({ args }) {
    try {
      const target = connect(args);
      const query = { machine: args.machine, instance: args.instance, limit: args.limit };
      let after: number | undefined;
      do {
        const { traces } = await target.call("traces", { query: { ...query, after } });
        for (const t of traces) console.log(args.json ? JSON.stringify(t) : traceLine(t));
        after = traces.at(-1)?.seq ?? after ?? 0;
        if (args.follow) await Bun.sleep(500);
      } while (args.follow);
    } catch (e) {
      fail(e);
    }
  },
});
