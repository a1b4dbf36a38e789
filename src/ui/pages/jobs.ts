import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import type { Page, PageContext } from "../deps.ts";
import { html } from "../html.ts";
import { csrfField, pill, region } from "../layout.ts";

const TAIL_BYTES = 4 * 1024;
const TAIL_LINES = 20;

/** The end of a running job's log (its stdout and stderr, as the worker writes them), or null if there is none yet. */
export function logTail(dataDir: string, itemId: string, attempt: number): string | null {
  // Item ids reach the file system only as one path segment of a job this worker runs.
  if (itemId.includes("/") || itemId.includes("\\") || itemId.startsWith(".")) return null;
  let fd: number;
  try {
    fd = openSync(join(dataDir, "jobs", itemId, `attempt-${attempt}`, "job.log"), "r");
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString("utf8").split("\n");
    if (size > length) lines.shift();
    return lines.slice(-TAIL_LINES).join("\n");
  } finally {
    closeSync(fd);
  }
}

function jobs(ctx: PageContext) {
  const list = ctx.deps.jobs();
  const drained = ctx.deps.drainReason();
  return html`<p>${list.length} job(s) running on ${ctx.deps.nodeId}. ${
    drained !== null
      ? html`${pill(`drained (${drained}): takes no new work`, "warn")} <form class="inline" method="post" action="/ui/nodes/${ctx.deps.nodeId}/undrain">${csrfField(ctx.csrf)}<button type="submit">undrain</button></form>`
      : html`<form class="inline" method="post" action="/ui/nodes/${ctx.deps.nodeId}/drain" data-confirm="Drain ${ctx.deps.nodeId}? It stops taking work; running jobs finish.">${csrfField(ctx.csrf)}<button class="danger" type="submit">drain this node</button></form>`
  }</p>
${list.map((j) => {
  const tail = logTail(ctx.deps.dataDir, j.id, j.attempt);
  return html`<section class="card" data-job="${j.id}"><h2><a class="mono" href="/ui/work?item=${encodeURIComponent(j.id)}">${j.id}</a> <span class="muted">${j.type}, attempt ${j.attempt}, ${j.slots} slot(s), pid ${j.pid ?? "—"}</span></h2>
${tail === null ? html`<p class="muted">No log yet.</p>` : html`<pre>${tail}</pre>`}</section>`;
})}`;
}

export const jobsPage: Page = {
  name: "jobs",
  title: "Jobs on this node",
  poll: () => 3,
  replicated: false,
  body: (ctx) => region("jobs", jobs(ctx)),
  regions: { jobs },
};
