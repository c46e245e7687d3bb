/**
 * The dashboard end to end in headless Chromium: a memory storage, a
 * BackgroundJobServer running jobs in this process, and DashboardServer on
 * a random port. The browser logs in, watches counts change live, retries a
 * failed job, and renders XSS payloads from job arguments and errors as
 * text.
 *
 * QML_SCREENSHOTS=1 also saves docs/screenshots/*.png (with some throughput
 * history seeded so the chart has something to show); CI leaves the tree
 * alone. Under CI=true a missing Chromium is a failure, never a skip.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/adapters/http/index.js";
import { DashboardServer } from "../../src/adapters/runtime/node/dashboard-server.js";
import { BackgroundJobServer, Job, JobState, Storage, memoryBackend, ServerConfig, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import { newJobRecord } from "../../src/core/job.js";
import { describeWithService } from "../helpers/services.js";

const CHROMIUM = process.env.QML_CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOTS = process.env.QML_SCREENSHOTS === "1";
const SHOTS_DIR = join(import.meta.dirname, "../../docs/screenshots");
const TOKEN = "e2e-admin-token-0123456789abcdef";

const XSS = {
  img: `<img src=x onerror="window.__xss='img'">`,
  script: `<script>window.__xss='script'</script>`,
  svg: `"><svg onload="window.__xss='svg'">`,
  error: `<img src=x onerror="window.__xss='error'"><b>bold?</b>`,
};

describeWithService("chromium", existsSync(CHROMIUM), "dashboard in headless Chromium", () => {
  // A browser on a loaded 2-core machine: generous ceilings, while a normal run takes about 15 s in all.
  vi.setConfig({ testTimeout: 45_000 });
  const storage = new Storage(memoryBackend());
  const flaky = { fail: true };
  const registry = new WorkerRegistry()
    .register("demo.ok", (job) => WorkerResult.success({ echoed: job.arguments }))
    .register("demo.flaky", () => {
      if (flaky.fail) {
        // A fixed stack: the real one names this machine's paths, and docs/screenshots/job-detail.png shows it.
        const e = new Error("upstream returned 502");
        e.stack = "Error: upstream returned 502\n    at chargeCard (payments.ts:42:11)\n    at Worker.execute (worker.ts:17:5)";
        throw e;
      }
      return WorkerResult.success("recovered");
    })
    .register("demo.workflow", async (job, ctx) => {
      const reserved = await ctx.step.run("reserve", () => ({ sku: "A-1", order: job.arguments[0] }));
      const approval = await ctx.step.waitForEvent("approval", { event: "e2e.approved", timeout: 3_600_000 });
      return WorkerResult.success(await ctx.step.run("ship", () => ({ reserved, by: (approval?.data as { by?: string } | undefined)?.by })));
    })
    .register("demo.xss", () => {
      const e = new Error(XSS.error);
      e.stack = `Error: ${XSS.error}\n    at ${XSS.script} (worker.ts:1:1)`;
      throw e;
    });
  const server = new BackgroundJobServer(
    storage,
    registry,
    new ServerConfig("e2e").queues(["default", "mail", "payments"]).pollingInterval(50).maxPollingInterval(200).workerCount(4).logger(silentLogger),
  );
  const dashboard = new DashboardServer(storage, { auth: { adminTokens: [TOKEN] }, registry, logger: silentLogger, liveIntervalMs: 150 });
  let browser: Browser;
  let page: Page;
  let url: string;
  const dialogs: string[] = [];
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];

  /** Resolves when the job reaches a final state, by the server's events (no polling). */
  function settled(id: string): Promise<string> {
    return new Promise((resolve) => {
      const offs = [server.on("job:succeeded", (e) => e.job.id === id && done("succeeded")), server.on("job:failed", (e) => e.job.id === id && done("failed"))];
      function done(state: string) {
        for (const off of offs) off();
        resolve(state);
      }
    });
  }

  async function shot(name: string): Promise<void> {
    if (!SCREENSHOTS) return;
    mkdirSync(SHOTS_DIR, { recursive: true });
    await page.evaluate(() => document.getElementById("toasts")?.replaceChildren());
    await page.screenshot({ path: join(SHOTS_DIR, `${name}.png`) });
  }

  beforeAll(async () => {
    if (SCREENSHOTS) await seedHistory(storage);
    await server.start();
    url = (await dashboard.start("127.0.0.1:0")).url;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on("pageerror", (e) => pageErrors.push(String(e)));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await dashboard.stop();
    await server.stop(0);
  });

  it("logs in, then watches the counts change live while jobs run", async () => {
    await page.goto(url);
    expect(page.url()).toBe(`${url}login`);
    await page.fill("#token", "wrong-token-0123456789");
    await page.click("button[type=submit]");
    await page.waitForSelector(".login-error");
    await page.fill("#token", TOKEN);
    await page.click("button[type=submit]");
    await page.waitForSelector('[data-count="succeeded"]');
    await page.waitForSelector('body[data-live-mode="websocket"]');
    const before = Number((await page.textContent('[data-count="succeeded"]'))!.replace(/\D/g, ""));
    // A marker that a reload would wipe: the counts must change in this very page.
    await page.evaluate(() => ((window as unknown as { __sameDocument: boolean }).__sameDocument = true));

    const jobs = Array.from({ length: 6 }, (_, i) => new Job("demo.ok", [i], { queue: i % 2 ? "mail" : "default" }));
    const done = Promise.all(jobs.map((j) => settled(j.id)));
    await storage.enqueue(jobs);
    await done;
    await page.waitForFunction((n) => document.querySelector('[data-count="succeeded"]')?.textContent?.replace(/\D/g, "") === String(n), before + 6);
    expect(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument)).toBe(true);
    expect(await page.locator(".chart .bar-ok").count()).toBeGreaterThan(0);
    expect(await page.textContent(".recent")).toContain("demo.ok");
    await shot("overview");
  });

  it("retries a failed job from the UI", async () => {
    const job = new Job("demo.flaky", [{ order: 1042 }], { maxAttempts: 1, queue: "payments" });
    const failed = settled(job.id);
    const id = await storage.enqueue(job);
    expect(await failed).toBe("failed");

    await page.click('nav a[data-nav="jobs"]');
    await page.locator(`tr[data-job-id="${id}"]`).waitFor();
    await shot("jobs");

    await page.click('nav a[data-nav="failed"]');
    // The failed view's row (it has the error column), not the jobs view's row still on the page.
    const row = page.locator(`tr[data-job-id="${id}"]:has(.cell-error)`);
    await row.waitFor();
    expect(await row.textContent()).toContain("upstream returned 502");
    await shot("failed");

    await row.locator(".cell-job a").click();
    await page.waitForSelector('.job-meta .badge[data-state="failed"]');
    expect(await page.textContent('[data-role="error-message"]')).toBe("Error: upstream returned 502");
    const stack = (await page.textContent('[data-role="error-stack"]')) ?? "";
    expect(stack).toContain("at chargeCard (payments.ts:42:11)");
    expect(stack).not.toContain(process.cwd());
    expect(await page.locator(".timeline .tl-item").count()).toBe(3);
    await shot("job-detail");

    flaky.fail = false;
    const done = settled(id);
    await page.getByRole("button", { name: "Retry", exact: true }).click();
    expect(await done).toBe("succeeded");
    await page.waitForSelector('.job-meta .badge[data-state="succeeded"]');
    expect((await storage.get(id))?.state).toBe(JobState.Succeeded);
    // The timeline shows the retry: failed, then requeued, claimed again, succeeded.
    expect(await page.locator(".timeline .tl-state").allTextContents()).toEqual(["Succeeded", "Processing", "Enqueued", "Failed", "Processing", "Enqueued"]);
  });

  it("renders XSS payloads in arguments, errors and stacks as text, and none runs", async () => {
    const job = new Job("demo.xss", [XSS.img, { html: XSS.script }, XSS.svg], { maxAttempts: 1, metadata: { note: XSS.svg, recurringId: XSS.img } });
    const failed = settled(job.id);
    const id = await storage.enqueue(job);
    expect(await failed).toBe("failed");
    await storage.addOrUpdateRecurring("xss-nightly", "0 3 * * *", "demo.xss", [XSS.img]);

    await page.click('nav a[data-nav="jobs"]');
    const row = page.locator(`tr[data-job-id="${id}"]`);
    await row.waitFor();
    // The list shows arguments as compact JSON: the payload's quotes come escaped, its tags as typed.
    expect(await row.textContent()).toContain("<img src=x onerror=");
    expect(await row.textContent()).toContain(XSS.script);

    await page.click('nav a[data-nav="failed"]');
    await page.locator(`tr[data-job-id="${id}"]`).waitFor();
    expect(await page.locator(`tr[data-job-id="${id}"] .cell-error`).textContent()).toContain(XSS.error);

    await page.goto(`${url}#/jobs/${id}`);
    await page.waitForSelector('[data-role="arguments"]');
    const args = await page.textContent('[data-role="arguments"]');
    expect(args).toContain(XSS.img.replace(/"/g, '\\"'));
    expect(args).toContain(XSS.script);
    expect(await page.textContent('[data-role="error-message"]')).toBe(`Error: ${XSS.error}`);
    expect(await page.textContent('[data-role="error-stack"]')).toContain(XSS.script);
    expect(await page.textContent('[data-role="recurring-origin"]')).toContain(XSS.img);

    await page.click('nav a[data-nav="recurring"]');
    await page.getByText("xss-nightly").waitFor();
    expect(await page.textContent("table.t")).toContain("<img src=x");

    // Nothing ran, and no element came out of the payloads.
    expect(await page.evaluate(() => (window as unknown as { __xss?: string }).__xss)).toBeUndefined();
    expect(dialogs).toEqual([]);
    expect(await page.locator('img[src="x"], svg[onload], b:text("bold?")').count()).toBe(0);
    expect(await page.evaluate(() => [...document.scripts].filter((s) => !s.src).length)).toBe(0);
  });

  it("triggers a recurring job by hand, and the job's page names where it came from", async () => {
    await storage.addOrUpdateRecurring("nightly-digest", "0 4 * * *", "demo.ok", [{ digest: true }]);
    // From another view: the recurring list loads when it opens.
    await page.click('nav a[data-nav="queues"]');
    await page.click('nav a[data-nav="recurring"]');
    const row = page.locator("table.t tr", { hasText: "nightly-digest" });
    await row.waitFor();
    await row.getByRole("button", { name: "Trigger now" }).click();
    await page.waitForSelector('[data-role="recurring-origin"]');
    expect(await page.textContent('[data-role="recurring-origin"]')).toBe("nightly-digest · triggered by hand");
    const id = decodeURIComponent(new URL(page.url()).hash.replace(/^#\/jobs\//, ""));
    expect((await storage.get(id))?.metadata).toEqual({ recurringId: "nightly-digest", trigger: "manual" });
  });

  it("shows a workflow's steps with their state, and follows them to the end when its event arrives", async () => {
    const id = await storage.enqueue(new Job("demo.workflow", [42]));
    await page.goto(`${url}#/jobs/${id}`);
    await page.waitForSelector('[data-role="step"][data-step="approval"][data-status="waiting"]');
    expect(await page.locator('[data-role="step"][data-step="reserve"][data-status="completed"]').count()).toBe(1);
    expect(await page.textContent('[data-role="step"][data-step="approval"]')).toContain("event e2e.approved, until");
    expect(await page.textContent('[data-role="steps"] .panel-head')).toContain("1 of 2 completed");
    const done = settled(id);
    expect((await storage.sendEvent("e2e.approved", { by: "ann" })).delivered).toEqual([id]);
    expect(await done).toBe("succeeded");
    await page.waitForSelector('.job-meta .badge[data-state="succeeded"]');
    await page.waitForSelector('[data-role="step"][data-step="ship"][data-status="completed"]');
    expect(await page.textContent('[data-role="step"][data-step="approval"]')).toContain("received event e2e.approved");
    expect(await page.textContent('[data-role="step"][data-step="reserve"]')).toContain('{"sku":"A-1","order":42}');
    expect(await page.textContent('[data-role="steps"] .panel-head')).toContain("3 of 3 completed");
  });

  it("shows a flow's tree and what the parent waits for, and follows it to the end", async () => {
    // One child sits in a queue no server here takes, so the parent waits until the test finishes that child.
    const ids = await storage.enqueueFlow({
      job: new Job("demo.ok", ["parent"]),
      children: [{ job: new Job("demo.ok", ["quick"]) }, { job: new Job("demo.ok", ["held"], { queue: "held" }) }],
    });
    await page.goto(`${url}#/jobs/${ids.id}`);
    await page.waitForSelector('[data-role="flow-tree"]');
    expect(await page.textContent('[data-role="flow-rule"]')).toBe("Waiting. Runs when all 2 have succeeded; fails if one ends another way.");
    expect(await page.locator('.job-meta .badge[data-state="awaiting"]').count()).toBe(1);
    await page.waitForSelector(`[data-role="flow-node"][data-state="succeeded"] a[href="#/jobs/${ids.children[0]!.id}"]`);
    expect(await page.locator(`[data-role="flow-node"][data-state="enqueued"] a[href="#/jobs/${ids.children[1]!.id}"]`).count()).toBe(1);

    const done = settled(ids.id);
    const [held] = await storage.driver.claim({ queues: ["held"], limit: 1, owner: "e2e", leaseMs: 30_000, now: Date.now() });
    const [res] = await storage.driver.complete(
      [{ id: held!.id, token: held!.leaseToken, state: JobState.Succeeded, reason: "done by the test", worker: "e2e" }],
      Date.now(),
    );
    expect(res!.dependents).toBe(true);
    await storage.settleDependents([held!.id]);
    expect(await done).toBe("succeeded");
    await page.waitForSelector('.job-meta .badge[data-state="succeeded"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-role="flow-node"][data-state="succeeded"]').length === 2);
    expect(await page.textContent('[data-role="flow-rule"]')).toBe("Runs when all 2 have succeeded; fails if one ends another way.");

    // A child's page names the parent that waited for it, while it waits.
    const other = await storage.enqueueFlow({ job: new Job("demo.ok", ["p2"]), children: [{ job: new Job("demo.ok", ["c2"], { queue: "held" }) }] });
    await page.goto(`${url}#/jobs/${other.children[0]!.id}`);
    await page.waitForSelector('[data-role="flow-needed-by"]');
    expect(await page.locator(`[data-role="flow-needed-by"] a[href="#/jobs/${other.id}"]`).count()).toBe(1);
    await storage.cancel(other.id);
  });

  /** Logs a fresh browser context into `base` and opens the overview. */
  async function freshPage(base: string, setup?: (ctx: BrowserContext) => Promise<unknown>): Promise<{ ctx: BrowserContext; p: Page }> {
    const ctx = await browser.newContext();
    await setup?.(ctx);
    const p = await ctx.newPage();
    p.on("pageerror", (e) => pageErrors.push(String(e)));
    await p.goto(`${base}login`);
    await p.fill("#token", TOKEN);
    await p.click("button[type=submit]");
    await p.waitForSelector('[data-count="succeeded"]');
    return { ctx, p };
  }

  /**
   * The page's succeeded count reaches the store's once a job of ours has
   * succeeded. Not "shown + 1": the count shown when the page loaded may
   * still lack an earlier test's job (the event comes before its batched
   * completion is written), and the page would then skip that number.
   */
  async function countsFollow(p: Page): Promise<void> {
    const job = new Job("demo.ok", ["fallback"]);
    const done = settled(job.id);
    await storage.enqueue(job);
    await done;
    await vi.waitFor(async () => expect((await storage.get(job.id))!.state).toBe(JobState.Succeeded));
    const target = (await storage.stats()).states.succeeded;
    await p.waitForFunction((n) => Number(document.querySelector('[data-count="succeeded"]')?.textContent?.replace(/\D/g, "")) >= n, target);
  }

  describe("falls back by itself", () => {
    // The app as Lambda mounts it: no upgradeWebSocket, so /ws answers 501 and the UI goes to SSE.
    let http: Server;
    let base: string;
    beforeAll(async () => {
      const app = createApp({ storage, registry, auth: { adminTokens: [TOKEN] }, logger: silentLogger, liveIntervalMs: 150 });
      http = createAdaptorServer({ fetch: app.fetch }) as Server;
      await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(http.address() as AddressInfo).port}/`;
    });
    afterAll(async () => {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    });

    it("to Server-Sent Events where the runtime has no WebSocket", async () => {
      const { ctx, p } = await freshPage(base);
      await p.waitForSelector('body[data-live-mode="sse"]');
      await countsFollow(p);
      await ctx.close();
    });

    it("to polling where event streams are blocked too", async () => {
      const { ctx, p } = await freshPage(base, (c) => c.route("**/api/events", (route) => route.abort()));
      await p.waitForSelector('body[data-live-mode="polling"]');
      await countsFollow(p);
      await ctx.close();
    });

    it("to Server-Sent Events when WebSockets are advertised but cut on the way", async () => {
      const { ctx, p } = await freshPage(url, (c) => c.routeWebSocket(/\/ws$/, (ws) => ws.close()));
      await p.waitForSelector('body[data-live-mode="sse"]');
      await countsFollow(p);
      await ctx.close();
    });
  });

  it("raised no CSP violation and no page error along the way", () => {
    expect(cspViolations).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});

/** Finished jobs spread over the last hour, straight through the storage seam, so the throughput chart has a shape. */
async function seedHistory(storage: Storage): Promise<void> {
  const now = Date.now();
  const queues = ["default", "mail", "reports"];
  for (let m = 59; m >= 1; m--) {
    const at = now - m * 60_000;
    const wave = Math.round(14 + 10 * Math.sin(m / 6) + (m % 7));
    for (let i = 0; i < wave; i++) {
      const queue = queues[i % queues.length]!;
      const job = new Job(["send_email", "build_report", "sync_inventory"][i % 3]!, [{ seq: m * 100 + i }], { queue, maxAttempts: 1 });
      await storage.driver.insert([newJobRecord(job, at)], at);
      const [rec] = await storage.driver.claim({ queues: [queue], limit: 1, owner: "seed", leaseMs: 30_000, now: at });
      const failed = (m * 31 + i) % 23 === 0;
      await storage.driver.complete(
        [
          {
            id: rec!.id,
            token: rec!.leaseToken,
            state: failed ? JobState.Failed : JobState.Succeeded,
            reason: failed ? "failed" : "succeeded",
            worker: "seed/1",
            ...(failed
              ? { error: { name: "Error", message: "connection reset by peer", stack: "Error: connection reset by peer\n    at sync (inventory.ts:42:11)" } }
              : { result: { ok: true } }),
          },
        ],
        at + 800,
      );
    }
  }
  for (let i = 0; i < 4; i++) await storage.enqueue(new Job("build_report", [{ month: i + 1 }], { queue: "reports", delay: (i + 1) * 900_000 }));
}
