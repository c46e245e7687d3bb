/**
 * `wrangler deploy --dry-run` bundles the reference deployment offline, as
 * CI does before a real deploy: the bundle builds, stays Web Standards only
 * (no `node:` import, no TCP driver: `nodejs_compat` is off), and fits the
 * platform's size limit.
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

  it("bundles the entry with its queue and cron bindings", () => {
    expect(output).toContain("env.QML_QUEUE (qml-wakeups)");
    expect(output).toContain("--dry-run: exiting now.");
    expect(bundle).toContain("[qml] [cloudflare] createWorker needs");
  });

  it("contains no node: import and neither pg nor ioredis", () => {
    expect(bundle).not.toMatch(/\bfrom\s*["']node:|\bimport\s*\(\s*["']node:|\brequire\s*\(\s*["']node:/);
    const offending = sources.filter((s) => /node_modules\/(pg|pg-[a-z-]+|ioredis|ws)\//.test(s));
    expect(offending).toEqual([]);
    // The HTTP drivers are what it runs on.
    expect(sources.some((s) => s.includes("node_modules/@upstash/redis/"))).toBe(true);
    expect(sources.some((s) => s.includes("node_modules/@neondatabase/serverless/"))).toBe(true);
  });

  it("fits the Workers Free size limit", () => {
    const m = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
    expect(m, output).not.toBeNull();
    const gzipKiB = Number(m![2]);
    console.log(`[qml] Worker bundle: ${m![1]} KiB, ${m![2]} KiB gzipped`);
    expect(gzipKiB).toBeLessThan(FREE_PLAN_LIMIT_KIB);
  });
});
