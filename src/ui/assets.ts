/**
 * The dashboard's stylesheet and script, embedded in the binary as strings and served from /ui/assets/ (the
 * pages' Content-Security-Policy allows scripts and styles from this origin only).
 */

export const STYLE = `
:root{--fg:#1d2330;--muted:#5d6677;--bg:#f6f7f9;--card:#fff;--line:#dde1e8;--accent:#2a62c9;--ok:#1e8a4c;--warn:#b36b00;--bad:#c0392b}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;gap:1rem;align-items:center;flex-wrap:wrap;padding:.5rem 1rem;background:#1d2330;color:#fff}
header a{color:#cfd8ea;text-decoration:none;padding:.25rem .5rem;border-radius:4px}
header a.here{background:#3a4560;color:#fff}
header .brand{font-weight:600;color:#fff}
header .spacer{flex:1}
header form{margin:0}
main{padding:1rem;max-width:1400px;margin:0 auto}
h1{font-size:1.3rem;margin:.2rem 0 1rem}
h2{font-size:1.05rem;margin:1.2rem 0 .5rem}
section.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;margin-bottom:1rem;overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.85rem}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em}
pre{background:#11151d;color:#d8dee9;padding:.5rem;border-radius:4px;max-height:22rem;overflow:auto;white-space:pre-wrap}
.muted{color:var(--muted)}
.pill{display:inline-block;padding:0 .45rem;border-radius:9px;font-size:.8rem;background:#e7ebf2}
.pill.ok{background:#d8f0e2;color:var(--ok)}.pill.warn{background:#fbecd3;color:var(--warn)}.pill.bad{background:#f8dcd9;color:var(--bad)}
.banner{padding:.5rem .75rem;border-radius:4px;margin-bottom:1rem;background:#fbecd3;border:1px solid #efc98a}
.banner.info{background:#e3ecfb;border-color:#b5c9ee}
.banner.error{background:#f8dcd9;border-color:#e6a49c}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));gap:.5rem;margin-bottom:1rem}
.stat{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.5rem .75rem}
.stat b{display:block;font-size:1.25rem}
form.inline{display:inline;margin:0}
form.filters{display:flex;gap:.5rem;flex-wrap:wrap;align-items:end;margin-bottom:.5rem}
label{font-size:.85rem;color:var(--muted)}
input,select,button{font:inherit;padding:.2rem .45rem;border:1px solid var(--line);border-radius:4px;background:#fff}
button{cursor:pointer;background:var(--accent);border-color:var(--accent);color:#fff}
button.danger{background:var(--bad);border-color:var(--bad)}
button.quiet{background:#3a4560;border-color:#3a4560}
#live[aria-pressed=false]{background:#6b7385;border-color:#6b7385}
#stamp{font-size:.8rem;color:#cfd8ea}
svg.chart{width:100%;height:auto;max-height:22rem}
svg.chart text{font-size:11px;fill:var(--muted)}
svg.chart .axis{stroke:#aab1bf}
svg.chart .grid{stroke:#eef0f4}
svg.chart .ci{stroke:#8fa9dc;stroke-width:2}
svg.chart .pt{fill:var(--accent)}
svg.chart .pt.promoted{fill:var(--ok)}
svg.chart .pt.rejected{fill:var(--bad)}
svg.chart .line{fill:none;stroke:var(--accent);stroke-width:1.5}
svg.chart .base{stroke:var(--warn);stroke-dasharray:4 3}
svg.chart .bar{fill:var(--accent)}
svg.chart .s1 .line{stroke:var(--warn)}svg.chart .s1 .pt{fill:var(--warn)}svg.chart .s1 text{fill:var(--warn)}
svg.chart .s0 text{fill:var(--accent)}
.login{max-width:24rem;margin:4rem auto}
.login input{width:100%;margin:.25rem 0 .75rem}
`;

/**
 * Progressive enhancement: every element with data-region is refreshed in place by fetching the same page with
 * ?partial=<region>, one request at a time, only while the tab is visible and live refresh is on (a toggle kept
 * in localStorage). Without JavaScript the pages work as plain server-rendered HTML.
 */
export const SCRIPT = `(() => {
  "use strict";
  const KEY = "p2p-ui-live";
  const toggle = document.getElementById("live");
  const stamp = document.getElementById("stamp");
  const every = Math.max(1, Number(document.body.dataset.poll || "10")) * 1000;
  let live = localStorage.getItem(KEY) !== "off";
  let busy = false;
  const show = () => {
    if (!toggle) return;
    toggle.textContent = live ? "Live: on" : "Live: off";
    toggle.setAttribute("aria-pressed", String(live));
  };
  const refresh = async () => {
    if (!live || busy || document.visibilityState !== "visible") return;
    busy = true;
    try {
      for (const el of document.querySelectorAll("[data-region]")) {
        const url = new URL(location.href);
        url.searchParams.set("partial", el.dataset.region);
        const res = await fetch(url, { credentials: "same-origin", headers: { accept: "text/html" } });
        if (res.redirected || res.status === 401) { location.assign("/ui/login"); return; }
        if (!res.ok) throw new Error(String(res.status));
        el.innerHTML = await res.text();
      }
      if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      if (stamp) stamp.textContent = "refresh failed (" + e.message + ")";
    } finally {
      busy = false;
    }
  };
  if (toggle) toggle.addEventListener("click", () => {
    live = !live;
    localStorage.setItem(KEY, live ? "on" : "off");
    show();
    if (live) void refresh();
  });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") void refresh(); });
  // Delegated, so forms inside a refreshed region keep asking.
  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !confirm(form.dataset.confirm)) ev.preventDefault();
  });
  show();
  setInterval(() => void refresh(), every);
})();
`;
