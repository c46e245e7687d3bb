/**
 * Deadline: a Workers cron tick (in workerd, through Miniflare, over Redis
 * via the Upstash REST driver) and a Lambda scheduled invocation (a process
 * of its own, over PostgreSQL) are killed at their deadline with a job
 * still running, one the invocation could neither finish nor hand back
 * (it spins on the CPU). The job must stay leased until its lease ends, be
 * reclaimed after that (never before), and complete on a later invocation.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { createLambdaHandlers } from "../../src/adapters/runtime/lambda/index.js";
import { Job, JobState, WorkerRegistry, WorkerResult, silentLogger, type JobRecord, type Storage } from "../../src/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { lambdaContext, scheduledEvent } from "../lambda/aws-events.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { figures, until } from "./helpers.js";
import { openStore } from "./stores.js";
import { record } from "../helpers/records.js";

const LEASE_MS = 2500;
const BUDGET_MS = 1500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const at = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** The history of a job killed once at its deadline and finished by a later invocation. */
function expectReclaimedAfterLease(done: JobRecord, held: JobRecord): void {
  expect(done).toMatchObject({ state: JobState.Succeeded, attempts: 2 });
  expect(done.history.map((h) => h.state)).toEqual(["enqueued", "processing", "enqueued", "processing", "succeeded"]);
  const reclaim = done.history[2]!;
  expect(reclaim.reason).toMatch(/^lease expired/);
  expect(reclaim.at).toBeGreaterThan(held.leaseUntil!);
}

const keys = prefixes("chaos-deadline");
describeWithService("redis", await serviceUp("redis"), "chaos: a Workers cron tick killed at its deadline", () => {
  let gateway: UpstashGateway;
  let script: string;
  const instances: Miniflare[] = [];
  beforeAll(async () => {
    gateway = await startUpstashGateway({ redisUrl: REDIS_URL });
    const out = await build({
      entryPoints: [at("./fixtures/deadline-worker.ts")],
      bundle: true,
      format: "esm",
      platform: "neutral",
      conditions: ["workerd", "worker", "browser"],
      mainFields: ["module", "main"],
      write: false,
      logLevel: "silent",
    });
    script = out.outputFiles[0]!.text;
  }, 60_000);
  afterAll(async () => {
    for (const mf of instances) await mf.dispose().catch(() => {});
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  it("its job is reclaimed after the lease and completes on the next tick", async () => {
    const prefix = keys.next();
    const start = () => {
      const mf = new Miniflare({
        modules: true,
        script,
        compatibilityDate: "2026-04-01",
        cf: false,
        unsafeTriggerHandlers: true,
        bindings: { UPSTASH_URL: gateway.url, UPSTASH_TOKEN: gateway.token, PREFIX: prefix, LEASE_MS: String(LEASE_MS), BUDGET_MS: String(BUDGET_MS) },
      });
      instances.push(mf);
      return mf;
    };
    const storage = await openStore({ kind: "redis", url: REDIS_URL, prefix });
    try {
      const id = await storage.enqueue(new Job("wedge", [], { maxAttempts: 3 }));

      const doomed = start();
      const worker = await doomed.getWorker();
      const t0 = Date.now();
      const tick = worker.scheduled({ cron: "* * * * *", scheduledTime: new Date(t0) }).catch((e: unknown) => e);
      const held = await until(async () => {
        const r = await record(storage, id);
        return r?.state === JobState.Processing ? r : undefined;
      }, 20_000);
      expect(held, "the first tick should have claimed the job").toBeDefined();
      // The platform's wall-clock limit: the isolate is killed with the job still spinning.
      await sleep(Math.max(0, t0 + BUDGET_MS - Date.now()));
      await doomed.dispose();
      await tick;
      expect((await record(storage, id))!.state).toBe(JobState.Processing);

      // Cron ticks of a fresh isolate until the job is done.
      const next = start();
      const nextWorker = await next.getWorker();
      let ticks = 0;
      const done = await until(
        async () => {
          ticks++;
          await nextWorker.scheduled({ cron: "* * * * *", scheduledTime: new Date() });
          const r = await record(storage, id);
          return r?.state === JobState.Succeeded ? r : undefined;
        },
        20_000,
        200,
      );
      figures("deadline/workers", { jobs: 1, killed_at_deadline: 1, later_ticks: ticks, lease_ms: LEASE_MS, lost: done ? 0 : 1 });
      expect(done).toBeDefined();
      expectReclaimedAfterLease(done!, held!);
      expect(done!.result).toBe("finished by the next invocation");
    } finally {
      await storage.close();
    }
  }, 60_000);
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: a Lambda invocation killed at its deadline", () => {
  afterAll(() => janitor.dropAll());

  it("its job is reclaimed after the lease and completes on the next invocation", async () => {
    const spec = { kind: "postgres", driver: "pg", url: DATABASE_URL, schema: janitor.next("qml_chaos"), maxConnections: 2 } as const;
    const storage: Storage = await openStore(spec);
    const child = spawn(process.execPath, ["--import", "tsx", at("./fixtures/lambda-invocation.ts")], {
      env: { ...process.env, QML_CHAOS_STORE: JSON.stringify(spec), QML_CHAOS_BUDGET_MS: String(BUDGET_MS), QML_CHAOS_LEASE_MS: String(LEASE_MS) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += String(d)));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    try {
      const id = await storage.enqueue(new Job("wedge", [], { maxAttempts: 3 }));
      const { deadline, started } = await new Promise<{ deadline: number; started: string }>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => {
          out += String(d);
          const dl = /DEADLINE (\d+)\n/.exec(out);
          const st = /STARTED (\S+)\n/.exec(out);
          if (dl && st) resolve({ deadline: Number(dl[1]), started: st[1]! });
        });
        void exited.then(() => reject(new Error(`the invocation exited early: ${out}${err}`)));
      });
      expect(started).toBe(id);
      const held = (await record(storage, id))!;
      expect(held).toMatchObject({ state: JobState.Processing, attempts: 1 });
      // Lambda kills the invocation when its time is up.
      await sleep(Math.max(0, deadline - Date.now()));
      child.kill("SIGKILL");
      expect(await exited).toBe("SIGKILL");
      expect(out).not.toContain("REPORT");

      // EventBridge ticks, each a fresh invocation with three seconds to live, until the job is done.
      const registry = new WorkerRegistry().register("wedge", () => WorkerResult.success("finished by the next invocation"));
      const handlers = createLambdaHandlers({ storage: () => storage, registry, leaseMs: LEASE_MS, safetyMs: 200, logger: silentLogger });
      const reports: Array<{ reclaimed: number; succeeded: number }> = [];
      const done = await until(
        async () => {
          reports.push(await handlers.scheduleHandler(scheduledEvent(), lambdaContext(3000, undefined, "qml-chaos-next")));
          const r = await record(storage, id);
          return r?.state === JobState.Succeeded ? r : undefined;
        },
        20_000,
        200,
      );
      figures("deadline/lambda", { jobs: 1, killed_at_deadline: 1, later_invocations: reports.length, lease_ms: LEASE_MS, lost: done ? 0 : 1 });
      expect(done).toBeDefined();
      expectReclaimedAfterLease(done!, held);
      expect(reports.reduce((n, r) => n + r.reclaimed, 0)).toBe(1);
      expect(reports.at(-1)).toMatchObject({ succeeded: 1 });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await storage.close();
    }
  }, 60_000);
});
