import type { WorkItem } from "../../work/model.ts";
import type { Page, PageContext } from "../deps.ts";
import { html } from "../html.ts";
import { ago, csrfField, region, statePill, when } from "../layout.ts";

const STATES = [
  "pending",
  "claimed",
  "running",
  "retry-wait",
  "lease-expired",
  "completed",
  "failed",
  "dead-lettered",
  "cancelled",
] as const;
const FINISHED = new Set(["completed", "failed", "dead-lettered", "cancelled"]);
const MAX_LIMIT = 1_000;

const status = (ctx: PageContext) => ctx.once("work.status", () => ctx.deps.work.status());

function limitOf(query: URLSearchParams): number {
  const n = Number(query.get("limit") ?? 100);
  return Number.isInteger(n) && n > 0 ? Math.min(n, MAX_LIMIT) : 100;
}

function cancelButton(ctx: PageContext, item: WorkItem) {
  if (FINISHED.has(item.state)) return "";
  return html`<form class="inline" method="post" action="/ui/work/${item.id}/cancel" data-confirm="Cancel ${item.id}?">${csrfField(ctx.csrf)}<button class="danger" type="submit">cancel</button></form>`;
}

function filters(ctx: PageContext) {
  const q = ctx.query;
  const types = Object.keys(status(ctx).byType).sort();
  const option = (value: string, selected: string | null) =>
    html`<option value="${value}"${value === (selected ?? "") ? html` selected` : ""}>${value || "any"}</option>`;
  return html`<form class="filters" method="get" action="/ui/work">
<div><label for="state">state</label><br><select id="state" name="state">${["", ...STATES].map((s) => option(s, q.get("state")))}</select></div>
<div><label for="type">type</label><br><select id="type" name="type">${["", ...types].map((t) => option(t, q.get("type")))}</select></div>
<div><label for="limit">show</label><br><input id="limit" name="limit" type="number" min="1" max="${MAX_LIMIT}" value="${limitOf(q)}"></div>
<div><label for="item">item id</label><br><input id="item" name="item" value="${q.get("item") ?? ""}"></div>
<button type="submit">apply</button></form>`;
}

function queue(ctx: PageContext) {
  const { work } = ctx.deps;
  const counts = status(ctx);
  const q = ctx.query;
  const state = q.get("state") || undefined;
  const type = q.get("type") || undefined;
  const items = work.list({ state, type, limit: limitOf(q) });
  const seen = new Set(Object.values(counts.byType).flatMap((s) => Object.keys(s)));
  const columns = STATES.filter((s) => seen.has(s));
  const bp = counts.backpressure;
  return html`<div class="grid">${STATES.filter((s) => counts.byState[s]).map(
    (s) => html`<div class="stat"><span class="muted">${s}</span><b data-count="${s}">${counts.byState[s]}</b></div>`,
  )}
<div class="stat"><span class="muted">queued / soft / hard</span><b>${bp.queued} / ${bp.soft} / ${bp.hard}</b><span class="muted">backpressure ${bp.level}</span></div></div>
<section class="card"><h2>By type</h2><table><thead><tr><th>type</th>${columns.map((c) => html`<th class="num">${c}</th>`)}</tr></thead><tbody>
${Object.entries(counts.byType)
  .sort(([a], [b]) => a.localeCompare(b))
  .map(
    ([t, counts]) =>
      html`<tr><td><a href="/ui/work?type=${encodeURIComponent(t)}">${t}</a></td>${columns.map((c) => html`<td class="num">${counts[c] ?? 0}</td>`)}</tr>`,
  )}
</tbody></table></section>
<section class="card"><h2>Items <span class="muted">(${items.length} shown, highest priority first${state ? `, ${state}` : ""}${type ? `, ${type}` : ""})</span></h2>
<table id="items"><thead><tr><th>id</th><th>type</th><th>state</th><th class="num">priority</th><th class="num">attempts</th><th>node</th><th>updated</th><th></th></tr></thead><tbody>
${items.map(
  (i) =>
    html`<tr data-item="${i.id}"><td class="mono"><a href="/ui/work?item=${encodeURIComponent(i.id)}">${i.id}</a></td><td>${i.type}</td><td>${statePill(i.state)}</td><td class="num">${i.priority}</td><td class="num">${i.context.attempts} / ${i.context.maxAttempts}</td><td>${i.context.leaseNode ?? ""}</td><td>${ago(ctx.now - i.updatedAt)} ago</td><td>${cancelButton(ctx, i)}</td></tr>`,
)}
</tbody></table></section>`;
}

function item(ctx: PageContext) {
  const id = ctx.query.get("item");
  if (!id) return html``;
  let found: ReturnType<PageContext["deps"]["work"]["get"]>;
  try {
    found = ctx.deps.work.get(id);
  } catch {
    return html`<section class="card"><h2>Item ${id}</h2><p>No such item on this node's replica.</p></section>`;
  }
  const history = ctx.deps.work.history({ itemId: id, limit: 200 });
  const why = found.whyPending;
  return html`<section class="card" id="item"><h2>Item <span class="mono">${found.id}</span> ${statePill(found.state)} ${cancelButton(ctx, found)}</h2>
<p>type <b>${found.type}</b>, priority ${found.priority}, attempt ${found.context.attempts} of ${found.context.maxAttempts}, created ${when(found.createdAt)}${found.context.leaseNode ? `, leased to ${found.context.leaseNode}` : ""}${found.context.error ? html`; last error: <code>${found.context.error}</code>` : ""}</p>
${
  why
    ? html`<h2>Why pending</h2><p data-why>${why.summary}</p><table><thead><tr><th>node</th><th>fits</th><th>why not</th></tr></thead><tbody>
${why.nodes.map((n) => html`<tr><td>${n.node}</td><td>${n.fits ? "yes" : "no"}</td><td>${n.reasons.join("; ")}</td></tr>`)}</tbody></table>`
    : ""
}
<h2>History</h2><table><thead><tr><th>at</th><th>from → to</th><th>event</th><th>node</th><th class="num">term</th><th>cause</th></tr></thead><tbody>
${history.map((h) => html`<tr><td>${when(h.at)}</td><td>${h.from ?? "∅"} → ${h.to}</td><td>${h.event}</td><td>${h.node ?? ""}</td><td class="num">${h.term}</td><td>${h.cause ?? ""}</td></tr>`)}
</tbody></table>
<h2>Config</h2><pre>${JSON.stringify(found.config, null, 2)}</pre></section>`;
}

export const workPage: Page = {
  name: "work",
  title: "Work queue",
  poll: () => 10,
  replicated: true,
  body: (ctx) => html`${filters(ctx)}${region("item", item(ctx))}${region("queue", queue(ctx))}`,
  regions: { queue, item },
};
