import { defineCommand } from "citty";
import type { Client } from "../client/client.ts";
import type { SyncSessionStatus } from "../sync/session.ts";
import type { SyncStatusView } from "../sync/views.ts";
import { formatAge, formatBytes, table } from "./table.ts";
import { connect, fail, targetArgs } from "./target.ts";

/** One line per session: a bar on a terminal, plain text otherwise. */
export function progressLine(s: SyncSessionStatus, tty: boolean): string {
  const fraction = s.bytesTotal > 0 ? Math.min(1, s.bytesDone / s.bytesTotal) : 1;
  const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
  const rate = `${formatBytes(s.rateBytesPerSec)}/s`;
  const eta = s.etaMs === null ? "-" : formatAge(Math.round(s.etaMs));
  const amounts = `${formatBytes(s.bytesDone)}/${formatBytes(s.bytesTotal)}`;
  const what = `${s.category}/${s.path}`;
  if (!tty) return `${what} ${s.state} ${pct.trim()} ${amounts} ${rate} eta ${eta}`;
  const width = 24;
  const filled = Math.round(fraction * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${pct} ${amounts.padEnd(21)} ${rate.padStart(12)} ETA ${eta.padEnd(7)} ${s.state.padEnd(10)} ${what}`;
}

function printStatus(view: SyncStatusView): void {
  console.log(
    table(
      ["CATEGORY", "HOLDS", "SWARM", "FILES", "BYTES", "DIGEST"],
      view.categories.map((c) => [
        c.name,
        c.holds ? "yes" : "no",
        c.swarm ? "yes" : "no",
        c.files,
        formatBytes(c.bytes),
        c.digest,
      ]),
    ),
  );
  console.log(view.active.length ? "" : "\nno transfers running");
  for (const s of view.active) console.log(progressLine(s, false));
  for (const h of view.heldOff) console.log(`held off ${h.key}: ${h.reason}`);
  const failed = view.recent.filter((s) => s.state !== "done").slice(-5);
  for (const s of failed) console.log(`failed ${s.category}/${s.path}: ${s.lastError ?? s.state}`);
}

const status = defineCommand({
  meta: { name: "status", description: "This node's data categories, running transfers and recent failures" },
  args: targetArgs,
  async run({ args }) {
    try {
      const view = await connect(args).call("syncStatus");
      if (args.json) return console.log(JSON.stringify(view, null, 2));
      printStatus(view);
    } catch (e) {
      fail(e);
    }
  },
});

async function follow(target: Client, tty: boolean, timeoutMs: number): Promise<SyncStatusView> {
  const deadline = Date.now() + timeoutMs;
  let drawn = 0;
  for (;;) {
    const view = await target.call("syncStatus");
    if (tty && drawn > 0) process.stdout.write(`\x1b[${drawn}A\x1b[J`);
    for (const s of view.active) console.log(progressLine(s, tty));
    drawn = tty ? view.active.length : 0;
    if ((view.active.length === 0 && view.starting === 0) || Date.now() > deadline) return view;
    await Bun.sleep(tty ? 250 : 1_000);
  }
}

const now = defineCommand({
  meta: { name: "now", description: "Rescan the data folders, compare with the peers and fetch what is missing" },
  args: {
    ...targetArgs,
    category: { type: "string", description: "Only this data category" },
    wait: { type: "boolean", description: "Follow the transfers until none is running", default: true },
    timeout: { type: "string", description: "Stop following after this many seconds", default: "3600" },
  },
  async run({ args }) {
    try {
      const target = connect(args);
      const started = await target.call("syncStart", {
        body: args.category ? { category: args.category } : {},
        timeoutMs: 60_000,
      });
      if (args.json && !args.wait) return console.log(JSON.stringify(started, null, 2));
      if (!args.json) console.log(`${started.sessions.length} transfer(s) running`);
      if (!args.wait) return;
      const view = await follow(target, !args.json && process.stdout.isTTY === true, Number(args.timeout) * 1000);
      if (args.json) return console.log(JSON.stringify(view, null, 2));
      const done = view.recent.filter((s) => s.state === "done").length;
      console.log(`${done} recent transfer(s) done, ${view.active.length} still running`);
    } catch (e) {
      fail(e);
    }
  },
});

export const syncCommand = defineCommand({
  meta: { name: "sync", description: "Data sync: status, or sync now" },
  subCommands: { status, now },
});
