/**
 * `wrangler deploy --dry-run` bundles the reference deployment offline, as
 * CI does before a real deploy: the bundle builds with its bindings (cron,
 * Queue, D1), stays Web Standards only (no `node:` import, no TCP or native
 * driver: `nodejs_compat` is off), fits the platform's size limit, and is
 * as small as the READMEs say.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../../", import.meta.url));
const wrangler = join(repo, "node_modules", ".bin", "wrangler");

/** Workers Free accepts 3 MB of compressed script; Paid 10 MB. */
const FREE_PLAN_LIMIT_KIB = 3 * 1024;

/**
 * The gzipped size a README claims ("under N KiB gzipped") in the part
 * about Workers. A claim stays useful only while it is close: the real
 * size must be at most N and at least 80 % of it.
 */
async function claimedGzipKiB(file: string, section: RegExp): Promise<number> {
  const text = await readFile(join(repo, file), "utf8");
  const start = text.search(section);
  expect(start, `${file} has no section matching ${section}`).toBeGreaterThanOrEqual(0);
  const m = /under ([\d,]+) KiB gzipped/.exec(text.slice(start));
  expect(m, `${file} states the Worker bundle as "under N KiB gzipped"`).not.toBeNull();
  return Number(m![1]!.replace(/,/g, ""));
}

describe("wrangler deploy --dry-run", () => {
  let outdir: string;
  let output: string;
  let bundle: string;
  let sources: string[];

  beforeAll(async () => {
    outdir = await mkdtemp(join(tmpdir(), "qml-cf-bundle-"));
    const r = await run(wrangler, ["deploy", "--dry-run", "--outdir", outdir, "--config", "deploy/cloudflare/wrangler.jsonc"], {
      cwd: repo,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true", NO_COLOR: "1" },
      timeout: 50_000,
    });
    output = `${r.stdout}\n${r.stderr}`;
    bundle = await readFile(join(outdir, "worker.js"), "utf8");
    sources = (JSON.parse(await readFile(join(outdir, "worker.js.map"), "utf8")) as { sources: string[] }).sources;
  }, 55_000);

  afterAll(async () => {
    if (outdir) await rm(outdir, { recursive: true, force: true });
  });

  it("bundles the entry with its queue, D1 and cron bindings, D1 the default store", () => {
    expect(output).toContain("env.QML_QUEUE (qml-wakeups)");
    expect(output).toMatch(/env\.QML_DB \(qml\)\s+D1 Database/);
    expect(output).toMatch(/env\.QML_STORAGE \("sqlite"\)/);
    expect(output).toContain("--dry-run: exiting now.");
    expect(bundle).toContain("createWorker needs { storage");
  });

  it("contains no node: import and none of pg, ioredis, ws or better-sqlite3", () => {
    expect(bundle).not.toMatch(/\bfrom\s*["']node:|\bimport\s*\(\s*["']node:|\brequire\s*\(\s*["']node:/);
    const offending = sources.filter((s) => /node_modules\/(pg|pg-[a-z-]+|ioredis|ws|better-sqlite3|bindings)\//.test(s));
    expect(offending).toEqual([]);
    // The D1 driver and the HTTP drivers are what it runs on.
    expect(sources.some((s) => s.endsWith("src/adapters/storage/sqlite/drivers/d1.ts"))).toBe(true);
    expect(sources.some((s) => s.includes("node_modules/@upstash/redis/"))).toBe(true);
    expect(sources.some((s) => s.includes("node_modules/@neondatabase/serverless/"))).toBe(true);
  });

  it("fits the Workers Free size limit, and the size both READMEs state", async () => {
    const m = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
    expect(m, output).not.toBeNull();
    const gzipKiB = Number(m![2]);
    console.log(`[qml] Worker bundle: ${m![1]} KiB, ${m![2]} KiB gzipped`);
    expect(gzipKiB).toBeLessThan(FREE_PLAN_LIMIT_KIB);
    for (const [file, section] of [
      ["README.md", /^## Deploy to Cloudflare$/m],
      ["deploy/cloudflare/README.md", /^## Deploy to Cloudflare$/m],
    ] as const) {
      const claimed = await claimedGzipKiB(file, section);
      expect(gzipKiB, `${file} says under ${claimed} KiB gzipped`).toBeLessThanOrEqual(claimed);
      expect(gzipKiB, `${file} says under ${claimed} KiB gzipped: lower the figure`).toBeGreaterThanOrEqual(claimed * 0.8);
    }
  });
});
