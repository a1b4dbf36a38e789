import type { Elysia } from "elysia";
import { NotLeaderError } from "../consensus/raft.ts";
import { OutcomeUnknownError } from "../consensus/runtime.ts";
import { CallError, call } from "../net/client.ts";
import { ROUTES } from "../net/route-table.ts";
import { pathParams } from "../net/url-input.ts";
import { RunError } from "../runs/service.ts";
import { WorkError } from "../work/service.ts";
import { SCRIPT, STYLE } from "./assets.ts";
import type { Page, PageContext, UiDeps } from "./deps.ts";
import { type Html, html } from "./html.ts";
import { banner, layout, loginPage, replicaBanner } from "./layout.ts";
import { clusterPage } from "./pages/cluster.ts";
import { jobsPage } from "./pages/jobs.ts";
import { modelsPage, runsPage } from "./pages/runs.ts";
import { tracesPage } from "./pages/traces.ts";
import { workPage } from "./pages/work.ts";
import { CLEARED_COOKIE, type Session, Sessions, sameSecret, sessionCookie } from "./session.ts";

/** The dashboard's routes (all under /ui; the gate leaves them to the session check here). */
export const UI_PAGES: Record<string, Page> = {
  "/ui": clusterPage,
  "/ui/work": workPage,
  "/ui/jobs": jobsPage,
  "/ui/runs": runsPage,
  "/ui/models": modelsPage,
  "/ui/traces": tracesPage,
};

export const UI_ACTIONS = {
  cancel: "/ui/work/:id/cancel",
  drain: "/ui/nodes/:id/drain",
  undrain: "/ui/nodes/:id/undrain",
  rollback: "/ui/runs/:name/rollback",
  promote: "/ui/runs/:name/promote",
} as const;

/** Served without a session: the login form and the two embedded assets. */
export const UI_OPEN = {
  login: "/ui/login",
  style: "/ui/assets/app.css",
  script: "/ui/assets/app.js",
} as const;

/** Every route of the dashboard, beside the API's table (src/net/route-table.ts), which it is not part of. */
export const UI_ROUTES: ReadonlyArray<{ method: "GET" | "POST"; path: string }> = [
  { method: "GET", path: UI_OPEN.style },
  { method: "GET", path: UI_OPEN.script },
  { method: "GET", path: UI_OPEN.login },
  { method: "POST", path: UI_OPEN.login },
  { method: "POST", path: "/ui/logout" },
  ...Object.keys(UI_PAGES).map((path) => ({ method: "GET" as const, path })),
  ...Object.values(UI_ACTIONS).map((path) => ({ method: "POST" as const, path })),
];

const FORWARD_TIMEOUT_MS = 5_000;
const MAX_FORM_BYTES = 16 * 1024;

const NOTICES: Record<string, string> = {
  cancelled: "Cancelled.",
  drained: "Drain requested: the node takes no new work; its running jobs finish.",
  undrained: "Undrained: the node takes work again.",
  "rolled-back": "Rolled back to the previous promoted model.",
  promoted: "Promoted: it is the run's best model now.",
};

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

function page(status: number, body: Html | string, headers: Record<string, string> = {}): Response {
  return new Response(String(body), {
    status,
    headers: { "content-type": "text/html; charset=utf-8", ...SECURITY_HEADERS, ...headers },
  });
}

function redirect(location: string, headers: Record<string, string> = {}): Response {
  return new Response(null, { status: 303, headers: { location, ...SECURITY_HEADERS, ...headers } });
}

function memo(): <T>(key: string, read: () => T) => T {
  const values = new Map<string, unknown>();
  return <T>(key: string, read: () => T): T => {
    if (!values.has(key)) values.set(key, read());
    return values.get(key) as T;
  };
}

/** A refused action, shown to the operator with its reason. */
class ActionError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Reads a urlencoded form body (what the pages' forms send), bounded. */
async function readForm(request: Request): Promise<URLSearchParams | null> {
  const type = request.headers.get("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded")) return null;
  const text = await request.text();
  if (text.length > MAX_FORM_BYTES) return null;
  return new URLSearchParams(text);
}

export function uiRoutes(app: Elysia, deps: UiDeps): void {
  const sessions = new Sessions();
  const credentials = { kind: "operator" as const, token: deps.token };

  /** Runs an action where the replicated state is: here if this node leads, else at the leader, with the token. */
  const atLeader = async (
    local: () => Promise<unknown>,
    forward: (leader: string, opts: { timeoutMs: number }) => Promise<unknown>,
  ): Promise<void> => {
    if (deps.holdsState()) {
      try {
        await local();
        return;
      } catch (e) {
        if (!(e instanceof NotLeaderError)) throw e;
      }
    }
    const leader = deps.leaderHint();
    if (!leader?.address) throw new ActionError(503, "no leader is known right now; try again in a moment");
    await forward(leader.address, { timeoutMs: FORWARD_TIMEOUT_MS });
  };

  const context = (request: Request, session: Session): PageContext => ({
    deps,
    query: new URL(request.url).searchParams,
    csrf: session.csrf,
    now: Date.now(),
    once: memo(),
    elo: (run) => deps.runs.elo(run),
  });

  const render = (p: Page, ctx: PageContext): Response => {
    const partial = ctx.query.get("partial");
    const blocked = p.replicated && !deps.holdsState();
    if (partial !== null) {
      const part = p.regions[partial];
      if (!part) return page(400, html`no region "${partial}" on this page`);
      return page(200, blocked ? html`` : part(ctx));
    }
    const status = deps.status();
    const notice = NOTICES[ctx.query.get("notice") ?? ""];
    const banners = [
      ...(notice ? [banner("info", notice)] : []),
      ...(p.replicated ? [replicaBanner(deps.holdsState(), status.node.role, deps.leaderHint())] : []),
    ].filter((b): b is Html => b !== null);
    return page(
      200,
      layout({
        page: p.name,
        title: p.title,
        nodeId: deps.nodeId,
        csrf: ctx.csrf,
        poll: p.poll(ctx),
        banners,
        body: blocked ? html`` : p.body(ctx),
      }),
    );
  };

  const failure = (e: unknown, back: string): Response => {
    let status = 500;
    let message = e instanceof Error ? e.message : String(e);
    if (e instanceof ActionError || e instanceof RunError || e instanceof WorkError) status = e.status;
    else if (e instanceof CallError) {
      status = e.status ?? 502;
      // The other node's own words (the API's error body), without the call's URL.
      message = (e.body as { message?: string } | undefined)?.message ?? e.message;
    } else if (e instanceof OutcomeUnknownError) status = 503;
    else if (!(e instanceof NotLeaderError)) throw e;
    return page(
      status,
      html`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Refused</title><link rel="stylesheet" href="/ui/assets/app.css"></head>
<body><main>${banner("error", html`Not done: ${message}`)}<p><a href="${back}">Back</a></p></main></body></html>`,
    );
  };

  const asset = (body: string, type: string) => () =>
    new Response(body, { headers: { "content-type": type, "cache-control": "max-age=300", ...nosniff } });
  const nosniff = { "x-content-type-options": "nosniff" };
  app.route("GET", UI_OPEN.style, asset(STYLE, "text/css; charset=utf-8"), { parse: "none" });
  app.route("GET", UI_OPEN.script, asset(SCRIPT, "text/javascript; charset=utf-8"), { parse: "none" });

  app.route(
    "GET",
    UI_OPEN.login,
    ({ request }: { request: Request }) =>
      sessions.fromRequest(request) ? redirect("/ui") : page(200, loginPage(null)),
    { parse: "none" },
  );
  app.route(
    "POST",
    UI_OPEN.login,
    async ({ request }: { request: Request }) => {
      const form = await readForm(request);
      const token = form?.get("token") ?? "";
      if (!sameSecret(token, deps.token)) return page(401, loginPage("Wrong operator token."));
      return redirect("/ui", { "set-cookie": sessionCookie(sessions.create()) });
    },
    { parse: "none" },
  );

  for (const [path, p] of Object.entries(UI_PAGES)) {
    app.route(
      "GET",
      path,
      ({ request }: { request: Request }) => {
        const session = sessions.fromRequest(request);
        if (!session) {
          const partial = new URL(request.url).searchParams.has("partial");
          return partial ? page(401, "log in again") : redirect("/ui/login");
        }
        return render(p, context(request, session));
      },
      { parse: "none" },
    );
  }

  /** A state-changing POST: a live session and its CSRF token in the form, compared in constant time. */
  const action = (
    pattern: string,
    run: (params: Record<string, string>, form: URLSearchParams) => Promise<string>,
    back: (params: Record<string, string>) => string,
  ) => {
    app.route(
      "POST",
      pattern,
      async ({ request }: { request: Request }) => {
        const session = sessions.fromRequest(request);
        if (!session) return redirect("/ui/login");
        const form = await readForm(request);
        if (!form) return page(415, "send the form as application/x-www-form-urlencoded, at most 16 KiB");
        if (!sameSecret(form.get("csrf") ?? "", session.csrf)) {
          return page(403, "missing or wrong CSRF token: reload the page and try again");
        }
        const params = pathParams(pattern, new URL(request.url).pathname);
        if (!params.ok) return params.response;
        try {
          return redirect(await run(params.value, form));
        } catch (e) {
          return failure(e, back(params.value));
        }
      },
      { parse: "none" },
    );
  };

  app.route(
    "POST",
    "/ui/logout",
    async ({ request }: { request: Request }) => {
      const session = sessions.fromRequest(request);
      if (!session) return redirect("/ui/login", { "set-cookie": CLEARED_COOKIE });
      const form = await readForm(request);
      if (!form || !sameSecret(form.get("csrf") ?? "", session.csrf)) {
        return page(403, "missing or wrong CSRF token: reload the page and try again");
      }
      sessions.end(session.id);
      return redirect("/ui/login", { "set-cookie": CLEARED_COOKIE });
    },
    { parse: "none" },
  );

  const q = encodeURIComponent;
  action(
    UI_ACTIONS.cancel,
    async ({ id = "" }) => {
      const reason = "cancelled from the dashboard";
      let refused: ActionError | null = null;
      await atLeader(
        async () => {
          const outcome = await deps.work.cancel(id, reason);
          if (!outcome.ok) refused = new ActionError(outcome.status, outcome.reason);
        },
        (leader, o) => call(leader, ROUTES.workCancel, credentials, { ...o, params: { id }, body: { reason } }),
      );
      if (refused) throw refused;
      return `/ui/work?item=${q(id)}&notice=cancelled`;
    },
    ({ id = "" }) => `/ui/work?item=${q(id)}`,
  );
  /** Drains (a reason) or undrains (null) a node: this one directly, another through its API. */
  const drainAction = (path: string, reason: string | null, notice: string) =>
    action(
      path,
      async ({ id = "" }) => {
        if (id === deps.nodeId) deps.setDrain(reason);
        else {
          const peer = deps.status().peers.find((p) => p.id === id);
          if (!peer) throw new ActionError(404, `no node "${id}" is known here`);
          const o = { timeoutMs: FORWARD_TIMEOUT_MS };
          if (reason === null) await call(peer.address, ROUTES.undrain, credentials, { ...o, body: {} });
          else await call(peer.address, ROUTES.drain, credentials, { ...o, body: { reason } });
        }
        return `/ui?notice=${notice}`;
      },
      () => "/ui",
    );
  drainAction(UI_ACTIONS.drain, "drained from the dashboard", "drained");
  drainAction(UI_ACTIONS.undrain, null, "undrained");
  const reason = "from the dashboard";
  action(
    UI_ACTIONS.rollback,
    async ({ name = "" }) => {
      await atLeader(
        () => deps.runs.rollback(name, reason),
        (leader, o) => call(leader, ROUTES.runRollback, credentials, { ...o, params: { name }, body: { reason } }),
      );
      return `/ui/models?run=${q(name)}&notice=rolled-back`;
    },
    ({ name = "" }) => `/ui/models?run=${q(name)}`,
  );
  action(
    UI_ACTIONS.promote,
    async ({ name = "" }, form) => {
      const model = form.get("model") ?? "";
      if (!/^[0-9a-f]{64}$/.test(model)) throw new ActionError(422, "model: a model id (64 lowercase hex digits)");
      await atLeader(
        () => deps.runs.promote(name, model, reason),
        (leader, o) =>
          call(leader, ROUTES.runPromote, credentials, { ...o, params: { name }, body: { model, reason } }),
      );
      return `/ui/models?run=${q(name)}&notice=promoted`;
    },
    ({ name = "" }) => `/ui/models?run=${q(name)}`,
  );
}
