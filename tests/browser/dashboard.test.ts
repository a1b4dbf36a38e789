import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { demoRunToml } from "../integration/demo-run.ts";
import { requireBinary, TestCluster, waitFor } from "../integration/harness.ts";

/**
 * The dashboard in real Chromium against a 3-node cluster of the compiled binary running the demo training
 * run: log in through the form, every page renders live data with no console errors, an item is cancelled
 * and a node drained and undrained from the UI (and the API sees both), the Elo chart has one point per rated
 * model, the token never reaches a page or a URL, and a POST without the CSRF token is refused. Screenshots go
 * to test-artifacts/.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) {
  console.warn(`SKIPPED tests/browser: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
}
const ARTIFACTS = join(process.cwd(), "test-artifacts");
const PAGES = ["/ui", "/ui/work", "/ui/jobs", "/ui/runs", "/ui/models", "/ui/traces"] as const;

let cluster: TestCluster;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
const problems: string[] = [];
const urls: string[] = [];
const htmls: string[] = [];

interface EloView {
  ratings: Array<{ id: string; generation: number | null; state: string }>;
}

const ratedModels = async () =>
  ((await cluster.get("n1", "/runs/c4/elo")) as EloView).ratings.filter(
    (r) => r.state !== "baseline" && r.generation !== null,
  ).length;

/** Writes go to the leader (a follower answers 421). */
async function submit(id: string): Promise<void> {
  const { leader } = await cluster.status("n1");
  const res = await cluster.post(leader?.id ?? "n1", "/work", { id, type: "probe" });
  if (!res.ok) throw new Error(`submit ${id}: ${res.status} ${await res.text()}`);
}

async function item(id: string): Promise<{ state: string }> {
  return (await cluster.get("n1", `/work/${encodeURIComponent(id)}`)) as { state: string };
}

/**
 * Clicks a dashboard action's button and waits for its answer: its notice, or the page that says why it was not
 * done (served at the action's own URL), whose words then fail the test at once rather than at its timeout.
 */
async function act(selector: string, notice: string): Promise<void> {
  const before = page.url();
  await page.click(selector);
  await page.waitForURL(
    (url) => url.href !== before && (url.searchParams.has("notice") || url.pathname.split("/").length > 4),
  );
  const url = new URL(page.url());
  if (url.searchParams.get("notice") === notice) return;
  throw new Error(`the action answered ${url.pathname}${url.search}: ${(await page.textContent("main"))?.trim()}`);
}

async function visit(path: string, shot: string): Promise<string> {
  const response = await page.goto(`${base}${path}`);
  expect(response?.status()).toBe(200);
  const content = await page.content();
  htmls.push(content);
  await page.screenshot({ path: join(ARTIFACTS, `dashboard-${shot}.png`), fullPage: true });
  return content;
}

describe.skipIf(!HAVE_CHROMIUM)("dashboard in Chromium", () => {
  beforeAll(async () => {
    requireBinary();
    mkdirSync(ARTIFACTS, { recursive: true });
    cluster = new TestCluster(3, {
      voters: 3,
      // n3 alone runs "probe" items: drained, it leaves them pending.
      capabilities: (i) => [
        "bootstrap",
        "selfplay",
        "match",
        ...(i === 0 ? ["train"] : []),
        ...(i === 2 ? ["probe"] : []),
      ],
      extraToml: `${demoRunToml()}\n[jobs.probe]\ncommand = ["true"]\ntimeout = "1m"\n`,
    });
    cluster.startAll();
    base = `http://${cluster.node("n1").address}`;
    await waitFor(async () => (await cluster.status("n1")).leader !== null, 20_000, "a leader");
    browser = await chromium.launch({ executablePath: CHROMIUM });
    context = await browser.newContext();
    page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("dialog", (d) => void d.accept());
    page.on("request", (r) => {
      urls.push(r.url());
      if (!new URL(r.url()).hostname.startsWith("127.")) problems.push(`request off the node: ${r.url()}`);
    });
  }, 40_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  test("the login form sets an HttpOnly, SameSite=Strict session cookie; pages need it", async () => {
    await cluster.withLogs(async () => {
      await page.goto(`${base}/ui/work`);
      expect(new URL(page.url()).pathname).toBe("/ui/login");
      await page.fill("#token", "not-the-token");
      await page.click("button[type=submit]");
      expect(await page.textContent("[role=alert]")).toContain("Wrong operator token");
      // The refused login is a 401, which Chromium logs as a failed load; nothing else may be logged.
      expect(problems.splice(0)).toEqual([
        "console: Failed to load resource: the server responded with a status of 401 (Unauthorized)",
      ]);
      await page.fill("#token", cluster.token);
      await page.click("button[type=submit]");
      await page.waitForURL(`${base}/ui`);
      const [cookie] = await context.cookies(`${base}/ui`);
      expect(cookie).toMatchObject({ name: "p2p_ui", httpOnly: true, sameSite: "Strict", path: "/ui" });
      expect(cookie?.value).not.toContain(cluster.token);
      // Without the cookie: to the login page, never the data.
      const bare = await fetch(`${base}/ui/work`, { redirect: "manual" });
      expect(bare.status).toBe(303);
      expect(bare.headers.get("location")).toBe("/ui/login");
    });
  }, 30_000);

  test("every page renders live data, refreshes in place, with no console errors", async () => {
    await cluster.withLogs(async () => {
      await waitFor(async () => (await ratedModels()) >= 2, 120_000, "two rated models");
      const status = await cluster.status("n1");

      await visit("/ui", "cluster");
      expect(await page.locator("#nodes tbody tr").count()).toBe(3);
      expect(await page.textContent("[data-leader]")).toBe(status.leader?.id ?? "none");
      // The script refreshes the live regions (?partial=) while the tab is visible; the toggle stops it.
      await page.locator("#stamp", { hasText: "updated" }).waitFor({ timeout: 15_000 });
      await page.click("#live");
      expect(await page.getAttribute("#live", "aria-pressed")).toBe("false");
      await page.click("#live");

      const work = await visit("/ui/work", "work");
      expect(await page.locator("#items tbody tr").count()).toBeGreaterThan(0);
      expect(work).toContain('data-count="completed"');
      await visit("/ui/work?type=selfplay&state=completed", "work-filtered");
      const states = await page.locator("#items tbody tr .pill").allTextContents();
      expect(states.length).toBeGreaterThan(0);
      expect(new Set(states)).toEqual(new Set(["completed"]));

      await visit("/ui/jobs", "jobs");
      expect(await page.textContent("main")).toContain("running on n1");

      await visit("/ui/runs", "runs");
      expect(await page.locator('[data-run-detail="c4"]').count()).toBe(1);
      expect(await page.locator("#generations tbody tr").count()).toBeGreaterThanOrEqual(2);
      // Generation 1's training reported its losses (policy and value): each is a point.
      expect(await page.locator('svg[data-chart="loss"] circle').count()).toBeGreaterThanOrEqual(2);

      await visit("/ui/models", "models");
      expect(await page.locator("#models tbody tr").count()).toBeGreaterThanOrEqual(2);

      await visit("/ui/traces?machine=raft", "traces");
      const machines = await page.locator("#traces tbody tr td:nth-child(3)").allTextContents();
      expect(machines.length).toBeGreaterThan(0);
      expect(new Set(machines)).toEqual(new Set(["raft"]));
      expect(problems).toEqual([]);
    });
  }, 150_000);

  test("the Elo chart has one point per rated model", async () => {
    await cluster.withLogs(async () => {
      // A model rated between the page and the API would differ by one: read until both agree.
      const drawn = await waitFor(
        async () => {
          const before = await ratedModels();
          await page.goto(`${base}/ui/models`);
          const points = await page.locator('svg[data-chart="elo"] circle.pt').count();
          return before === (await ratedModels()) && { before, points };
        },
        20_000,
        "a models page read while no model was rated",
      );
      expect(drawn.points).toBe(drawn.before);
      expect(drawn.points).toBeGreaterThanOrEqual(2);
    });
  }, 30_000);

  test("drain a node and cancel an item from the UI; the API sees both", async () => {
    await cluster.withLogs(async () => {
      // n3 runs probes before the drain.
      await submit("probe-before");
      await waitFor(async () => (await item("probe-before")).state === "completed", 30_000, "a probe before the drain");

      await visit("/ui", "cluster-before-drain");
      await act('tr[data-node="n3"] button', "drained");
      expect(await page.textContent("main")).toContain("Drain requested");

      // Drained, n3 finishes what it runs and takes nothing more: a probe waits while the others keep working.
      const idle = async () => ((await cluster.get("n3", "/jobs")) as { jobs: unknown[] }).jobs.length === 0;
      await waitFor(idle, 60_000, "n3 idle");
      await submit("probe-after");
      const completed = async () =>
        ((await cluster.get("n1", "/work/status")) as { byState: Record<string, number> }).byState.completed ?? 0;
      const start = await completed();
      await waitFor(async () => (await completed()) >= start + 3, 60_000, "three more items completed elsewhere");
      expect((await item("probe-after")).state).toBe("pending");

      // Cancel it from its page.
      await visit("/ui/work?item=probe-after", "work-item");
      // Why it waits, node by node (n3, the only one with "probe", fits or not by its gossiped load).
      expect(await page.textContent("[data-why]")).toMatch(/fits/);
      expect(await page.locator("#item tbody tr", { hasText: "n3" }).count()).toBe(1);
      await act("#item button.danger", "cancelled");
      expect(await page.textContent("main")).toContain("Cancelled.");
      await waitFor(
        async () => (await item("probe-after")).state === "cancelled",
        5_000,
        "the API to see it cancelled",
      );
      // n1 forwarded the cancel to the leader if it does not lead; its replica shows it once applied.
      await waitFor(
        async () => {
          await page.reload();
          return (await page.textContent("#item h2"))?.includes("cancelled");
        },
        5_000,
        "the item page to show it cancelled",
      );
    });
  }, 150_000);

  test("roll back and promote from the models page", async () => {
    await cluster.withLogs(async () => {
      const best = async () =>
        ((await cluster.get("n1", "/runs/c4")) as { context: { best: { id: string; generation: number } } }).context
          .best;
      // A rollback needs a promoted generation before the best: the run must have promoted one past g0.
      const before = await waitFor(
        async () => {
          const b = await best();
          return b.generation >= 1 ? b : undefined;
        },
        90_000,
        "a generation promoted past g0",
      );
      await page.goto(`${base}/ui/models`);
      await act("form[action='/ui/runs/c4/rollback'] button", "rolled-back");
      const back = await waitFor(
        async () => {
          const now = await best();
          return now.id !== before.id && now;
        },
        5_000,
        "the best to move back",
      );
      expect(back.generation).toBeLessThan(before.generation);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-models-rolled-back.png"), fullPage: true });
      await act(`tr[data-model="${before.id}"] button`, "promoted");
      await waitFor(async () => (await best()).id === before.id, 5_000, "the best to be the promoted model again");
    });
  }, 120_000);

  test("a POST without the CSRF token is refused", async () => {
    await waitFor(() => submit("probe-csrf").then(() => true), 5_000, "a probe submitted");
    await waitFor(async () => (await item("probe-csrf")).state === "pending", 5_000, "the probe on n1's replica");
    const url = `${base}/ui/work/probe-csrf/cancel`;
    const none = await page.request.post(url, { form: {}, maxRedirects: 0 });
    expect(none.status()).toBe(403);
    const wrong = await page.request.post(url, { form: { csrf: "x".repeat(43) }, maxRedirects: 0 });
    expect(wrong.status()).toBe(403);
    expect((await item("probe-csrf")).state).toBe("pending");
  }, 20_000);

  test("undrain from the UI: the drained node takes the waiting probe", async () => {
    await cluster.withLogs(async () => {
      await visit("/ui", "cluster-drained");
      expect(await page.textContent('tr[data-node="n3"]')).toContain("drained from the dashboard");
      await act('tr[data-node="n3"] form[action="/ui/nodes/n3/undrain"] button', "undrained");
      expect(await page.textContent("main")).toContain("Undrained");
      await waitFor(async () => (await item("probe-csrf")).state === "completed", 30_000, "n3 running the probe");
    });
  }, 60_000);

  test("the token appears in no page and no URL", () => {
    expect(htmls.length).toBeGreaterThanOrEqual(PAGES.length);
    for (const h of htmls) expect(h).not.toContain(cluster.token);
    for (const u of urls) expect(u).not.toContain(cluster.token);
    expect(problems).toEqual([]);
  });
});
