import type { LeaderHint } from "../consensus/hints.ts";
import { type Html, html } from "./html.ts";

export const NAV = [
  ["cluster", "/ui"],
  ["work", "/ui/work"],
  ["jobs", "/ui/jobs"],
  ["runs", "/ui/runs"],
  ["models", "/ui/models"],
  ["traces", "/ui/traces"],
] as const;

export type PageName = (typeof NAV)[number][0];

export interface Shell {
  page: PageName;
  title: string;
  nodeId: string;
  csrf: string;
  /** Seconds between refreshes of the page's live regions. */
  poll: number;
  banners: Html[];
  body: Html;
}

export function layout(s: Shell): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${s.title} · ${s.nodeId} · p2p-orchestrator</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/assets/app.css"><script src="/ui/assets/app.js" defer></script></head>
<body data-poll="${s.poll}">
<header><span class="brand">p2p-orchestrator · ${s.nodeId}</span>
<nav>${NAV.map(([name, href]) => html`<a href="${href}"${name === s.page ? html` class="here" aria-current="page"` : ""}>${name}</a>`)}</nav>
<span class="spacer"></span><span id="stamp"></span>
<button id="live" type="button" class="quiet" aria-pressed="true" title="Refresh this page's live parts while the tab is visible">Live: on</button>
<form class="inline" method="post" action="/ui/logout">${csrfField(s.csrf)}<button class="quiet" type="submit">Log out</button></form>
</header>
<main><h1>${s.title}</h1>${s.banners}${s.body}</main>
</body></html>`;
}

export function csrfField(csrf: string): Html {
  return html`<input type="hidden" name="csrf" value="${csrf}">`;
}

/** A region the script refreshes in place (?partial=<name>). */
export function region(name: string, content: Html): Html {
  return html`<div data-region="${name}">${content}</div>`;
}

export function banner(kind: "warn" | "info" | "error", content: Html | string): Html {
  return html`<div class="banner ${kind === "warn" ? "" : kind}" role="${kind === "error" ? "alert" : "status"}">${content}</div>`;
}

/** Where the replicated state of a page comes from, said once at the top. */
export function replicaBanner(holdsState: boolean, role: string, leader: LeaderHint | null): Html | null {
  const leaderText = leader
    ? html`the leader is <b>${leader.id}</b> (term ${leader.term})${
        leader.address ? html` — <a href="http://${leader.address}/ui">its dashboard</a>` : ""
      }`
    : html`no leader is known right now`;
  if (!holdsState) {
    return banner(
      "warn",
      html`Not a voter: this node holds no replicated state, so queue, runs and models are not shown here; ${leaderText}.`,
    );
  }
  if (role !== "leader")
    return banner("info", html`Read from this voter's replica (may lag by a moment); ${leaderText}.`);
  return null;
}

export function loginPage(error: string | null): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Log in · p2p-orchestrator</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/assets/app.css"></head>
<body><main class="login"><section class="card"><h1>p2p-orchestrator</h1>
${error ? banner("error", error) : ""}
<form method="post" action="/ui/login">
<label for="token">Operator token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button></form>
<p class="muted">The token is the one in the cluster's <code>operator.token</code> file.</p></section></main></body></html>`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function bytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 10 || u === 0 ? Math.round(v) : v.toFixed(1)} ${UNITS[u]}`;
}

export function ago(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function when(at: number | null | undefined): string {
  return at ? new Date(at).toISOString().replace("T", " ").slice(0, 19) : "—";
}

export function short(id: string | null | undefined): string {
  return id ? (id.length > 12 ? id.slice(0, 12) : id) : "—";
}

export function pill(text: string, kind: "ok" | "warn" | "bad" | "" = ""): Html {
  return html`<span class="pill ${kind}">${text}</span>`;
}

const STATE_KIND: Record<string, "ok" | "warn" | "bad" | ""> = {
  alive: "ok",
  leader: "ok",
  completed: "ok",
  running: "ok",
  promoted: "ok",
  suspect: "warn",
  pending: "",
  "retry-wait": "warn",
  "lease-expired": "warn",
  dead: "bad",
  left: "",
  failed: "bad",
  "dead-lettered": "bad",
  cancelled: "",
  rejected: "bad",
};

export function statePill(state: string): Html {
  return pill(state, STATE_KIND[state] ?? "");
}
