/**
 * Ending sessions from the dashboard in headless Chromium: two browsers log
 * in; one ends every session from the sidebar and lands on the login page,
 * and the other's next request is sent there too. Log out ends the
 * session for good: its cookie, set again by hand, no longer opens a page.
 * Under CI=true a missing Chromium is a failure, never a skip.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { DashboardServer } from "../../src/adapters/runtime/node/dashboard-server.js";
import { Storage, memoryBackend, silentLogger } from "../../src/index.js";
import { describeWithService } from "../helpers/services.js";

const CHROMIUM = process.env.QML_CHROMIUM ?? "/usr/bin/chromium";
const TOKEN = "e2e-admin-token-0123456789abcdef";

describeWithService("chromium", existsSync(CHROMIUM), "ending sessions in headless Chromium", () => {
  vi.setConfig({ testTimeout: 45_000 });
  const dashboard = new DashboardServer(new Storage(memoryBackend()), { auth: { adminTokens: [TOKEN] }, logger: silentLogger, liveIntervalMs: 150 });
  let browser: Browser;
  let url: string;

  beforeAll(async () => {
    url = (await dashboard.start("127.0.0.1:0")).url;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await dashboard.stop();
  });

  async function loggedIn(): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    await page.goto(url);
    await page.fill("#token", TOKEN);
    await page.click("button[type=submit]");
    await page.waitForSelector(".end-all-sessions");
    return page;
  }

  it("End all sessions (asked twice) sends every browser back to the login page", async () => {
    const mine = await loggedIn();
    const theirs = await loggedIn();
    await mine.click(".end-all-sessions");
    expect(await mine.textContent(".end-all-sessions")).toBe("End every session?");
    await mine.click(".end-all-sessions");
    await mine.waitForURL(`${url}login`);
    await theirs.goto(url);
    expect(theirs.url()).toBe(`${url}login`);
  });

  it("Log out ends the session for good: its cookie set again opens nothing", async () => {
    const page = await loggedIn();
    const [cookie] = await page.context().cookies();
    await page.click("#logout-form button");
    await page.waitForURL(`${url}login`);
    await page.context().addCookies([cookie!]);
    await page.goto(url);
    expect(page.url()).toBe(`${url}login`);
  });
});
