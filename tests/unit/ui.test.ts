import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadNodeConfig, type NodeConfig } from "../../src/config/load.ts";
import { type RunningNode, startNode } from "../../src/node/node.ts";
import { createLogger } from "../../src/observability/log.ts";
import { html, raw } from "../../src/ui/html.ts";
import { UI_OPEN, UI_PAGES, UI_ROUTES } from "../../src/ui/routes.ts";
import { Sessions } from "../../src/ui/session.ts";
import { freePort } from "./free-port.ts";

describe("html", () => {
  test("escapes every interpolated value; nested templates and raw constants pass as they are", () => {
    const evil = `<script>alert("x")</script>&'`;
    expect(String(html`<p title="${evil}">${evil}</p>`)).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</p>',
    );
    expect(String(html`<ul>${["<a>", html`<li>${"<b>"}</li>`]}</ul>`)).toBe("<ul>&lt;a&gt;<li>&lt;b&gt;</li></ul>");
    expect(String(html`${null}${undefined}${false}${0}${raw("<br>")}`)).toBe("0<br>");
  });
});

describe("sessions", () => {
  test("expire, and the oldest goes when the store is full", () => {
    let now = 1_000;
    const sessions = new Sessions(() => now, 2);
    const cookie = (id: string) => new Request("http://l/ui", { headers: { cookie: `a=b; p2p_ui=${id}` } });
    const first = sessions.create();
    const second = sessions.create();
    expect(sessions.fromRequest(cookie(first.id))?.csrf).toBe(first.csrf);
    const third = sessions.create();
    expect(sessions.size).toBe(2);
    expect(sessions.fromRequest(cookie(first.id))).toBeNull();
    expect(sessions.fromRequest(cookie(second.id))).not.toBeNull();
    now += 13 * 3_600_000;
    expect(sessions.fromRequest(cookie(third.id))).toBeNull();
    expect(sessions.fromRequest(new Request("http://l/ui"))).toBeNull();
  });
});

describe("the dashboard on a node", () => {
  let dir: string;
  let config: NodeConfig;
  let node: RunningNode;
  const form = (body: Record<string, string>, cookie?: string) => ({
    method: "POST",
    redirect: "manual" as const,
    headers: { "content-type": "application/x-www-form-urlencoded", ...(cookie ? { cookie } : {}) },
    body: new URLSearchParams(body).toString(),
  });
  let cookie = "";
  const get = (path: string) => fetch(`${node.url}${path}`, { headers: { cookie }, redirect: "manual" });
  const csrfOf = (page: string) => /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "p2p-ui-"));
    const path = join(dir, "cluster.toml");
    // "x1" items fit the only node but it has no slots: they stay pending.
    writeFileSync(
      path,
      `[cluster]\nname = "ui"\ndata_dir = "data/{id}"\n\n[jobs.x1]\ncommand = ["true"]\n\n[[nodes]]\nid = "solo"\naddress = "127.0.0.1:${freePort()}"\nvoter = true\ncapabilities = ["x1"]\nslots = 0\n`,
    );
    writeFileSync(join(dir, "cluster.secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
    writeFileSync(join(dir, "operator.token"), randomBytes(24).toString("hex"), { mode: 0o600 });
    config = loadNodeConfig(path, { node: "solo" });
    node = await startNode(config, createLogger("error"));
    const deadline = Date.now() + 5_000;
    for (;;) {
      const res = await fetch(`${node.url}/work`, {
        method: "POST",
        headers: { authorization: `Bearer ${config.token}`, "content-type": "application/json" },
        body: JSON.stringify({ id: "xss", type: "x1", config: { note: "<script>alert(1)</script>" } }),
      });
      if (res.ok) break;
      if (Date.now() > deadline) throw new Error(`no leader to submit to: ${res.status}`);
      await Bun.sleep(20);
    }
  });

  afterAll(async () => {
    await node?.leave("test done");
    rmSync(dir, { recursive: true, force: true });
  });

  test("every dashboard route is served, and all but the login form and its assets need the session", async () => {
    const open = new Set<string>(Object.values(UI_OPEN));
    for (const { method, path } of UI_ROUTES) {
      const url = `${node.url}${path.replace(/:[a-z]+/g, "x")}`;
      const res = await fetch(url, method === "POST" ? form({}) : { redirect: "manual" });
      if (open.has(path)) expect([200, 401]).toContain(res.status);
      else {
        expect(res.status).toBe(303);
        expect(res.headers.get("location")).toBe("/ui/login");
      }
    }
  });

  test("pages need a login; a wrong token is refused; the cookie is a session id, not the token", async () => {
    const bare = await fetch(`${node.url}/ui/work`, { redirect: "manual" });
    expect(bare.status).toBe(303);
    expect(bare.headers.get("location")).toBe("/ui/login");
    expect((await fetch(`${node.url}/ui/work?partial=queue`)).status).toBe(401);
    expect((await fetch(`${node.url}/ui/login`, form({ token: "wrong" }))).status).toBe(401);
    const ok = await fetch(`${node.url}/ui/login`, form({ token: config.token }));
    expect(ok.status).toBe(303);
    const setCookie = ok.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/^p2p_ui=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/ui; Max-Age=\d+$/);
    expect(setCookie).not.toContain(config.token);
    cookie = setCookie.split(";")[0] as string;
  });

  test("every page renders, escapes what it shows and never contains the token", async () => {
    for (const path of Object.keys(UI_PAGES)) {
      const res = await get(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
      const body = await res.text();
      expect(body).not.toContain(config.token);
      expect(body).not.toContain("<script>alert");
    }
    const item = await (await get("/ui/work?item=xss")).text();
    expect(item).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    const region = await (await get("/ui/work?item=xss&partial=item")).text();
    expect(region.startsWith('<section class="card" id="item">')).toBe(true);
    expect((await get("/ui/work?partial=nope")).status).toBe(400);
  });

  test("a state-changing POST needs the session's CSRF token", async () => {
    const page = await (await get("/ui/work?item=xss")).text();
    const csrf = csrfOf(page);
    expect(csrf).toHaveLength(43);
    const cancel = `${node.url}/ui/work/xss/cancel`;
    expect((await fetch(cancel, form({}, cookie))).status).toBe(403);
    expect((await fetch(cancel, form({ csrf: `${csrf.slice(1)}x` }, cookie))).status).toBe(403);
    expect((await fetch(cancel, form({ csrf }))).status).toBe(303);
    const pending = await fetch(`${node.url}/work/xss`, { headers: { authorization: `Bearer ${config.token}` } });
    expect(((await pending.json()) as { state: string }).state).toBe("pending");

    const done = await fetch(cancel, form({ csrf }, cookie));
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe("/ui/work?item=xss&notice=cancelled");
    const after = await fetch(`${node.url}/work/xss`, { headers: { authorization: `Bearer ${config.token}` } });
    expect(((await after.json()) as { state: string }).state).toBe("cancelled");
    // A refusal is a page with the reason.
    const unknown = await fetch(`${node.url}/ui/work/nope/cancel`, form({ csrf }, cookie));
    expect(unknown.status).toBe(404);
    expect(await unknown.text()).toContain("Not done");
  });

  test("logging out needs the CSRF token and ends the session", async () => {
    const csrf = csrfOf(await (await get("/ui")).text());
    expect((await fetch(`${node.url}/ui/logout`, form({}, cookie))).status).toBe(403);
    const out = await fetch(`${node.url}/ui/logout`, form({ csrf }, cookie));
    expect(out.status).toBe(303);
    expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
    expect((await get("/ui")).headers.get("location")).toBe("/ui/login");
  });
});

describe("the dashboard on a node that is not a voter", () => {
  let dir: string;
  const nodes: RunningNode[] = [];
  let token = "";
  let voter = "";
  let worker = "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "p2p-ui-nv-"));
    const path = join(dir, "cluster.toml");
    const [v1, w1] = [freePort(), freePort()];
    writeFileSync(
      path,
      `[cluster]\nname = "ui"\ndata_dir = "data/{id}"\n\n[jobs.x1]\ncommand = ["true"]\n\n[[nodes]]\nid = "v1"\naddress = "127.0.0.1:${v1}"\nvoter = true\ncapabilities = ["x1"]\nslots = 0\n\n[[nodes]]\nid = "w1"\naddress = "127.0.0.1:${w1}"\nvoter = false\nslots = 0\n`,
    );
    writeFileSync(join(dir, "cluster.secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
    writeFileSync(join(dir, "operator.token"), randomBytes(24).toString("hex"), { mode: 0o600 });
    for (const id of ["v1", "w1"])
      nodes.push(await startNode(loadNodeConfig(path, { node: id }), createLogger("error")));
    token = loadNodeConfig(path, { node: "v1" }).token;
    [voter, worker] = nodes.map((n) => n.url) as [string, string];
    const deadline = Date.now() + 10_000;
    for (;;) {
      const res = await fetch(`${voter}/work`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ id: "held", type: "x1" }),
      });
      const status = (await (
        await fetch(`${worker}/status`, { headers: { authorization: `Bearer ${token}` } })
      ).json()) as {
        leader: { id: string } | null;
      };
      if (res.ok && status.leader?.id === "v1") break;
      if (Date.now() > deadline) throw new Error(`no leader known to w1: ${res.status}`);
      await Bun.sleep(50);
    }
  });

  afterAll(async () => {
    for (const n of nodes) await n.leave("test done");
    rmSync(dir, { recursive: true, force: true });
  });

  test("names the leader instead of showing empty state, and forwards an action to it", async () => {
    const login = await fetch(`${worker}/ui/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `token=${token}`,
    });
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] as string;
    const page = await (await fetch(`${worker}/ui/work?item=held`, { headers: { cookie } })).text();
    expect(page).toContain("Not a voter");
    expect(page).toContain(`href="${voter}/ui"`);
    expect(page).not.toContain('id="items"');
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";
    const cancel = await fetch(`${worker}/ui/work/held/cancel`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie },
      body: `csrf=${csrf}`,
    });
    expect(cancel.status).toBe(303);
    const item = await fetch(`${voter}/work/held`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await item.json()) as { state: string }).state).toBe("cancelled");
    // The leader's refusal comes back with its status and its words.
    const unknown = await fetch(`${worker}/ui/work/nope/cancel`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie },
      body: `csrf=${csrf}`,
    });
    expect(unknown.status).toBe(404);
    const refusal = await unknown.text();
    expect(refusal).toContain("Not done: ");
    expect(refusal).toContain("nope");
    expect(refusal).not.toContain(voter);
  });
});
