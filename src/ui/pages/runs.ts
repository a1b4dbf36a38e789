import { barChart, intervalChart, lineChart } from "../charts.ts";
import type { Page, PageContext } from "../deps.ts";
import { html } from "../html.ts";
import { ago, csrfField, pill, region, short, statePill, when } from "../layout.ts";

/** The run a page shows: ?run=<name>, else the first; null when there is none. */
function selectedRun(ctx: PageContext): string | null {
  const names = ctx.once("runNames", ctx.deps.runNames);
  const asked = ctx.query.get("run");
  return asked && names.includes(asked) ? asked : (names[0] ?? null);
}

function runPicker(ctx: PageContext, page: "runs" | "models", current: string | null) {
  const names = ctx.once("runNames", ctx.deps.runNames);
  if (names.length <= 1) return html``;
  return html`<p>Runs: ${names.map(
    (name) =>
      html`<a href="/ui/${page}?run=${encodeURIComponent(name)}"${name === current ? html` aria-current="page"` : ""}>${name}</a> `,
  )}</p>`;
}

/** A training's reported loss: one number, or named parts ({policy, value} from the demo's trainer). */
function lossParts(loss: unknown): Record<string, number> {
  if (typeof loss === "number") return Number.isFinite(loss) ? { loss } : {};
  if (loss === null || typeof loss !== "object") return {};
  return Object.fromEntries(
    Object.entries(loss).filter((e): e is [string, number] => typeof e[1] === "number" && Number.isFinite(e[1])),
  );
}

function lossSeries(generations: ReadonlyArray<{ generation: number; loss: unknown }>) {
  const series = new Map<string, Array<{ x: number; y: number }>>();
  for (const g of generations) {
    for (const [name, y] of Object.entries(lossParts(g.loss))) {
      const points = series.get(name) ?? [];
      points.push({ x: g.generation, y });
      series.set(name, points);
    }
  }
  return [...series].map(([name, points]) => ({ name, points }));
}

const num = (x: unknown, digits = 3) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "—");

/** Newest rows a table shows unless ?all=1: the charts above it draw every generation. */
const NEWEST = 50;

function newest<T>(ctx: PageContext, rows: readonly T[]): { shown: T[]; more: number } {
  const shown = ctx.query.get("all") === "1" ? [...rows].reverse() : rows.slice(-NEWEST).reverse();
  return { shown, more: rows.length - shown.length };
}

function showAll(ctx: PageContext, page: string, more: number) {
  if (more === 0) return html``;
  const run = ctx.query.get("run");
  return html`<p><a href="/ui/${page}?${run ? `run=${encodeURIComponent(run)}&` : ""}all=1">show ${more} older</a></p>`;
}

/** Every run at a glance; with one run the page shows only its detail (the same facts, without planning twice). */
function overview(ctx: PageContext) {
  const names = ctx.once("runNames", ctx.deps.runNames);
  if (names.length === 0) return html`<p class="muted">No training runs are defined in the cluster file.</p>`;
  if (names.length === 1) return html``;
  const runs = ctx.once("runs", () => ctx.deps.runs.list());
  return html`<section class="card"><table id="runs"><thead><tr><th>run</th><th>stage</th><th>generation</th><th>best</th><th>candidate</th><th class="num">new games</th><th>why waiting</th></tr></thead><tbody>
${runs.map(
  (r) =>
    html`<tr data-run="${r.name}"><td><a href="/ui/runs?run=${encodeURIComponent(r.name)}">${r.name}</a></td><td>${r.paused ? pill("paused", "warn") : ""} ${r.stage}</td><td>${r.generation}</td><td>${r.best ? `g${r.best.generation}` : "—"}</td><td>${r.candidate ? `g${r.candidate.generation}` : "—"}</td><td class="num">${r.newGames}</td><td>${r.why ?? ""}</td></tr>`,
)}</tbody></table></section>`;
}

function detail(ctx: PageContext) {
  const name = selectedRun(ctx);
  if (!name) return html``;
  const run = ctx.deps.runs.get(name);
  const a = ctx.deps.runs.analytics(name);
  const generations = newest(ctx, a.generations);
  const sprt = run.sprt;
  const losses = lossSeries(a.generations);
  const perHour = a.selfplayLastHour.reduce((s, n) => s + (n.games ?? 0), 0);
  return html`<section class="card" data-run-detail="${name}"><h2>${name}: ${run.stage}${run.context.paused ? html` ${pill("paused", "warn")}` : ""}</h2>
<p data-why>${run.why ? html`Why waiting: ${run.why}` : "Not waiting."}</p>
<p>Best: ${run.context.best ? html`generation ${run.context.best.generation} <span class="mono">${short(run.context.best.id)}</span>` : "none"}; candidate: ${
    run.context.candidate
      ? html`generation ${run.context.candidate.generation} <span class="mono">${short(run.context.candidate.id)}</span>`
      : "none"
  }; ${run.context.newGames} new games since the last training.</p>
${
  sprt
    ? html`<h2>Gate (SPRT)</h2><p>LLR <b>${num(sprt.llr, 2)}</b> between ${num(sprt.lower, 2)} (reject) and ${num(sprt.upper, 2)} (promote):
<meter id="llr" min="${sprt.lower}" max="${sprt.upper}" value="${Math.min(sprt.upper, Math.max(sprt.lower, sprt.llr))}"></meter>
games ${sprt.games} of at most ${sprt.maxGames} <progress id="games" max="${sprt.maxGames}" value="${Math.min(sprt.games, sprt.maxGames)}"></progress>;
Elo ${num(sprt.elo.estimate, 1)} [${num(sprt.elo.low, 1)}, ${num(sprt.elo.high, 1)}], LOS ${num(sprt.elo.los * 100, 1)}%; ${sprt.decision}.</p>`
    : ""
}
</section>
<section class="card"><h2>Self-play in the last hour: ${perHour} games</h2>
${barChart(
  a.selfplayLastHour.map((n) => ({ label: n.node, value: n.games ?? 0 })),
  { title: "games per hour by node" },
)}</section>
<section class="card"><h2>Training loss by generation</h2>${lineChart(losses, { title: "loss", xLabel: "generation", yLabel: "loss" })}</section>
<section class="card"><h2>Generations</h2><table id="generations"><thead><tr><th>gen</th><th>model</th><th>state</th><th>trained on</th><th>trained</th><th class="num">loss</th><th class="num">samples/s</th><th>decision</th><th class="num">games</th><th class="num">LLR</th></tr></thead><tbody>
${generations.shown.map(
  (g) =>
    html`<tr><td>${g.generation}</td><td class="mono">${short(g.model)}</td><td>${statePill(g.state)}</td><td>${g.node ?? ""}</td><td>${when(g.trainedAt)}</td><td class="num">${
      Object.entries(lossParts(g.loss))
        .map(([k, x]) => `${k} ${x.toFixed(3)}`)
        .join(", ") || "—"
    }</td><td class="num">${num(g.samplesPerSecond, 0)}</td><td>${g.decision ? html`${statePill(g.decision.verdict)} ${ago(ctx.now - g.decision.at)} ago` : ""}</td><td class="num">${String(g.decision?.games ?? "")}</td><td class="num">${num(g.decision?.llr, 2)}</td></tr>`,
)}</tbody></table></section>${showAll(ctx, "runs", generations.more)}
<section class="card"><h2>Recent events</h2><table><thead><tr><th>at</th><th>event</th><th>stage</th><th>cause</th></tr></thead><tbody>
${[...run.history]
  .reverse()
  .map(
    (h) =>
      html`<tr><td>${when(h.at)}</td><td>${h.event}</td><td>${h.from ?? "∅"} → ${h.to}</td><td>${h.cause ?? ""}</td></tr>`,
  )}</tbody></table></section>`;
}

export const runsPage: Page = {
  name: "runs",
  title: "Training runs",
  poll: () => 10,
  replicated: true,
  body: (ctx) =>
    html`${runPicker(ctx, "runs", selectedRun(ctx))}${region("runs", overview(ctx))}${region("run", detail(ctx))}`,
  regions: { runs: overview, run: detail },
};

function models(ctx: PageContext) {
  const name = selectedRun(ctx);
  if (!name) return html`<p class="muted">No training runs are defined in the cluster file.</p>`;
  const { runs } = ctx.deps;
  const elo = ctx.elo(name);
  const registry = runs.models(name);
  const rated = elo.ratings.filter((r) => r.state !== "baseline" && r.generation !== null);
  const byId = new Map(elo.ratings.map((r) => [r.id, r] as const));
  const shownModels = newest(ctx, registry);
  const promotions = registry.filter((m) => m.state === "promoted" && m.generation > 0);
  const points = rated.map((r) => ({
    x: r.generation as number,
    y: r.elo,
    low: r.low,
    high: r.high,
    kind: r.state,
    label: `g${r.generation} ${short(r.id)}: ${r.elo.toFixed(0)} [${r.low.toFixed(0)}, ${r.high.toFixed(0)}], ${r.games} games`,
  }));
  const baselines = elo.ratings.filter((r) => r.state === "baseline").map((r) => ({ label: r.id, y: r.elo }));
  return html`<section class="card"><h2>Elo of ${name} by generation <span class="muted">(95% intervals, generation 0 at 0; ${rated.length} rated model(s))</span></h2>
${intervalChart(points, baselines, { title: "elo", xLabel: "generation", yLabel: "Elo" })}
<form class="inline" method="post" action="/ui/runs/${name}/rollback" data-confirm="Roll ${name} back to the promoted model before the current best?">${csrfField(ctx.csrf)}<button class="danger" type="submit">roll back to the previous promoted model</button></form>
</section>
<section class="card"><h2>Promotions</h2>${
    promotions.length === 0
      ? html`<p class="muted">None yet.</p>`
      : html`<ul>${promotions.map((m) => html`<li>generation ${m.generation} at ${when(m.decidedAt)}</li>`)}</ul>`
  }</section>
<section class="card"><h2>Models</h2><table id="models"><thead><tr><th>gen</th><th>model</th><th>state</th><th class="num">Elo</th><th class="num">95% interval</th><th class="num">games</th><th class="num">P(stronger than best)</th><th>held by</th><th>created</th><th></th></tr></thead><tbody>
${shownModels.shown.map((m) => {
  const r = byId.get(m.id);
  const best = elo.best === m.id;
  return html`<tr data-model="${m.id}"><td>${m.generation}</td><td class="mono">${short(m.id)}</td><td>${statePill(m.state)}${best ? html` ${pill("best", "ok")}` : ""}</td><td class="num">${r ? r.elo.toFixed(0) : "—"}</td><td class="num">${r ? `${r.low.toFixed(0)} … ${r.high.toFixed(0)}` : ""}</td><td class="num">${r?.games ?? 0}</td><td class="num">${r?.pStronger === undefined ? "" : `${(r.pStronger * 100).toFixed(0)}%`}</td><td>${(m.holders ?? []).join(", ")}</td><td>${when(m.createdAt)}</td><td>${
    best
      ? ""
      : html`<form class="inline" method="post" action="/ui/runs/${name}/promote" data-confirm="Make generation ${m.generation} the best model of ${name}?">${csrfField(ctx.csrf)}<input type="hidden" name="model" value="${m.id}"><button type="submit">promote</button></form>`
  }</td></tr>`;
})}</tbody></table></section>${showAll(ctx, "models", shownModels.more)}`;
}

export const modelsPage: Page = {
  name: "models",
  title: "Models",
  poll: () => 15,
  replicated: true,
  body: (ctx) => html`${runPicker(ctx, "models", selectedRun(ctx))}${region("models", models(ctx))}`,
  regions: { models },
};
