import type { Page, PageContext } from "../deps.ts";
import { html } from "../html.ts";
import { region, when } from "../layout.ts";

const MACHINES = ["raft", "peer", "sync", "job", "run"];
const MAX_LIMIT = 2_000;

function params(ctx: PageContext) {
  const q = ctx.query;
  const limit = Number(q.get("limit") ?? 200);
  return {
    machine: q.get("machine")?.slice(0, 64) || undefined,
    instance: q.get("instance")?.slice(0, 128) || undefined,
    limit: Number.isInteger(limit) && limit > 0 ? Math.min(limit, MAX_LIMIT) : 200,
    follow: q.get("follow") === "1",
  };
}

function filters(ctx: PageContext) {
  const p = params(ctx);
  return html`<form class="filters" method="get" action="/ui/traces">
<div><label for="machine">machine</label><br><input id="machine" name="machine" list="machines" value="${p.machine ?? ""}"><datalist id="machines">${MACHINES.map((m) => html`<option value="${m}">`)}</datalist></div>
<div><label for="instance">instance</label><br><input id="instance" name="instance" value="${p.instance ?? ""}"></div>
<div><label for="limit">rows</label><br><input id="limit" name="limit" type="number" min="1" max="${MAX_LIMIT}" value="${p.limit}"></div>
<div><label><input type="checkbox" name="follow" value="1"${p.follow ? html` checked` : ""}> follow (refresh every 2 s)</label></div>
<button type="submit">apply</button></form>`;
}

function rows(ctx: PageContext) {
  const p = params(ctx);
  const traces = ctx.deps.traces.query({ machine: p.machine, instance: p.instance, limit: p.limit }).reverse();
  return html`<section class="card"><p class="muted">${traces.length} transition(s), newest first, as recorded on ${ctx.deps.nodeId}.</p>
<table id="traces"><thead><tr><th class="num">seq</th><th>at</th><th>machine</th><th>instance</th><th>from → to</th><th>event</th><th>cause</th></tr></thead><tbody>
${traces.map(
  (t) =>
    html`<tr><td class="num">${t.seq}</td><td>${when(t.at)}</td><td><a href="/ui/traces?machine=${encodeURIComponent(t.machine)}">${t.machine}</a></td><td class="mono"><a href="/ui/traces?machine=${encodeURIComponent(t.machine)}&amp;instance=${encodeURIComponent(t.instance)}">${t.instance}</a></td><td>${t.from ?? "∅"} → ${t.to}</td><td>${t.event}</td><td>${t.cause ?? ""}</td></tr>`,
)}</tbody></table></section>`;
}

export const tracesPage: Page = {
  name: "traces",
  title: "Traces",
  poll: (ctx) => (params(ctx).follow ? 2 : 15),
  replicated: false,
  body: (ctx) => html`${filters(ctx)}${region("traces", rows(ctx))}`,
  regions: { traces: rows },
};
