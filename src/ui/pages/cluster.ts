import type { NodeInfo } from "../../shared/node-info.ts";
import type { Page, PageContext } from "../deps.ts";
import { html } from "../html.ts";
import { ago, bytes, csrfField, pill, region, statePill, when } from "../layout.ts";

interface Row {
  id: string;
  address: string;
  self: boolean;
  state: string;
  lastSeenMs: number | null;
  rttMs: number | null;
  info: NodeInfo | null;
  role: string;
  /** How this node reaches it, when not directly: "via n2", or for a node behind NAT itself its relays. */
  reach: string | null;
}

function rows(ctx: PageContext): Row[] {
  const s = ctx.deps.status();
  const leader = s.leader?.id;
  const roleOf = (id: string, info: NodeInfo | null) =>
    id === leader ? "leader" : info ? (info.voter ? "voter" : "worker") : "unknown";
  return [
    {
      id: s.node.id,
      address: s.node.address,
      self: true,
      state: "alive",
      lastSeenMs: 0,
      rttMs: null,
      info: s.node.resources,
      role: s.node.role === "non-voter" ? "worker" : s.node.role,
      reach: s.node.resources?.nat ? `behind NAT, relays: ${s.node.resources.relays?.join(", ") || "none yet"}` : null,
    },
    ...s.peers.map((p) => ({
      id: p.id,
      address: p.address,
      self: false,
      state: p.state,
      lastSeenMs: p.lastSeenMs,
      rttMs: p.rttMs,
      info: p.resources,
      role: roleOf(p.id, p.resources),
      reach: p.reach === "direct" ? null : p.reach,
    })),
  ];
}

function syncCell(ctx: PageContext, row: Row) {
  // A node gossips its digests to others; its own come from its sync service.
  const sync = row.self
    ? {
        digests: Object.fromEntries(ctx.deps.sync.status().categories.map((c) => [c.name, c] as const)),
        fetching: [],
      }
    : row.info?.sync;
  if (!sync) return html`<span class="muted">—</span>`;
  const categories = Object.entries(sync.digests).map(([name, d]) => `${name} ${d.files}`);
  return html`${categories.join(", ") || "no data"}${sync.fetching.length > 0 ? html` · ${pill(`fetching ${sync.fetching.length}`, "warn")}` : ""}`;
}

function nodes(ctx: PageContext) {
  const all = rows(ctx);
  const s = ctx.deps.status();
  const slots = all.reduce((a, r) => a + (r.info?.slots ?? 0), 0);
  const busy = all.reduce((a, r) => a + (r.info?.busySlots ?? 0), 0);
  const alive = all.filter((r) => r.state === "alive").length;
  return html`<div class="grid">
<div class="stat"><span class="muted">leader</span><b data-leader>${s.leader ? s.leader.id : "none"}</b><span class="muted">term ${s.leader?.term ?? "—"}</span></div>
<div class="stat"><span class="muted">nodes alive</span><b>${alive} / ${all.length}</b></div>
<div class="stat"><span class="muted">slots in use</span><b>${busy} / ${slots}</b></div>
<div class="stat"><span class="muted">this node</span><b>${s.node.id}</b><span class="muted">${s.node.role}${ctx.deps.drainReason() !== null ? " · drained" : ""}</span></div>
</div>
<section class="card"><h2>Nodes</h2><table id="nodes"><thead><tr><th>node</th><th>role</th><th>health</th><th class="num">rtt</th><th>cpu</th><th>memory free</th><th>disk free</th><th>gpus</th><th class="num">slots</th><th>data (files)</th><th></th></tr></thead><tbody>
${all.map((r) => {
  const i = r.info;
  const drained = r.self ? ctx.deps.drainReason() : (i?.draining ?? null);
  return html`<tr data-node="${r.id}"><td><b>${r.id}</b>${r.self ? html` <span class="muted">(this node)</span>` : ""}<br><span class="muted mono">${r.address}</span>${r.reach ? html`<br><span class="muted" data-reach>${r.reach}</span>` : ""}</td>
<td>${r.role === "leader" ? pill("leader", "ok") : r.role}</td>
<td>${statePill(r.state)}${r.lastSeenMs !== null && !r.self ? html`<br><span class="muted">seen ${ago(r.lastSeenMs)} ago</span>` : ""}${drained !== null ? html` ${pill("drained", "warn")}<br><span class="muted">${drained}</span>` : ""}</td>
<td class="num">${r.rttMs === null ? "—" : `${r.rttMs.toFixed(1)} ms`}</td>
<td>${i ? `${i.cpu.count} × load ${i.cpu.load1.toFixed(2)}` : "—"}</td>
<td>${i ? `${bytes(i.memory.freeBytes)} / ${bytes(i.memory.totalBytes)}` : "—"}</td>
<td>${i ? `${bytes(i.disk.freeBytes)} / ${bytes(i.disk.totalBytes)}` : "—"}</td>
<td>${i && i.gpus.length > 0 ? i.gpus.map((g) => `${g.name} ${g.utilizationPct}%`).join(", ") : "none"}</td>
<td class="num">${i ? `${i.busySlots ?? 0} / ${i.slots}` : "—"}</td>
<td>${syncCell(ctx, r)}</td>
<td>${
    r.state !== "alive"
      ? ""
      : drained === null
        ? html`<form class="inline" method="post" action="/ui/nodes/${r.id}/drain" data-confirm="Drain ${r.id}? It stops taking work; running jobs finish.">${csrfField(ctx.csrf)}<button class="danger" type="submit">drain</button></form>`
        : html`<form class="inline" method="post" action="/ui/nodes/${r.id}/undrain">${csrfField(ctx.csrf)}<button type="submit">undrain</button></form>`
  }</td></tr>`;
})}
</tbody></table></section>`;
}

function sync(ctx: PageContext) {
  const s = ctx.deps.sync.status();
  return html`<section class="card"><h2>Data sync on this node</h2><table><thead><tr><th>category</th><th>held here</th><th class="num">files</th><th class="num">bytes</th><th>digest</th></tr></thead><tbody>
${s.categories.map((c) => html`<tr><td>${c.name}</td><td>${c.holds ? "yes" : "no"}</td><td class="num">${c.files}</td><td class="num">${bytes(c.bytes)}</td><td class="mono">${c.digest.slice(0, 12)}</td></tr>`)}
</tbody></table>
<p>${s.active.length} transfer(s) active, ${s.starting} starting, ${s.heldOff.length} held off; uploads ${s.uploads.inUse} / ${s.uploads.limit}.</p>
${
  s.active.length > 0
    ? html`<table><thead><tr><th>file</th><th>state</th><th class="num">done</th><th class="num">rate</th><th>sources</th></tr></thead><tbody>
${s.active.map((a) => html`<tr><td class="mono">${a.path}</td><td>${a.state}</td><td class="num">${bytes(a.bytesDone)} / ${bytes(a.bytesTotal)}</td><td class="num">${bytes(a.rateBytesPerSec)}/s</td><td>${a.sources.join(", ")}</td></tr>`)}
</tbody></table>`
    : ""
}
${s.heldOff.length > 0 ? html`<ul>${s.heldOff.map((h) => html`<li><span class="mono">${h.key}</span>: ${h.reason} (until ${when(h.until)})</li>`)}</ul>` : ""}
</section>`;
}

export const clusterPage: Page = {
  name: "cluster",
  title: "Cluster",
  poll: () => 5,
  replicated: false,
  body: (ctx) => html`${region("nodes", nodes(ctx))}${region("sync", sync(ctx))}`,
  regions: { nodes, sync },
};
