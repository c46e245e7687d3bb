/**
 * A durable workflow (two steps, a sleep, an event wait, a step) across
 * Lambda invocations of which two are killed with SIGKILL, as the platform
 * kills one at its time limit: a real process, once between the first two
 * steps and once inside the second. The invocations after them (EventBridge
 * ticks, on a clock moved past the leases and the sleep) finish it, and the
 * counters each step's function keeps in the store show every step's work
 * done exactly once. On Redis and on PostgreSQL.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { Job, Storage, silentLogger, systemClock } from "../../src/index.js";
import { SkewedClock } from "../../src/core/clock.js";
import { createLambdaHandlers } from "../../src/adapters/runtime/lambda/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { lambdaContext, scheduledEvent } from "./aws-events.js";
import { counterKey, workflowRegistry, type KillAt } from "./fixtures/workflow-jobs.js";

const LEASE_MS = 2000;
const FIXTURE = join(import.meta.dirname, "fixtures", "workflow-invocation.ts");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs an invocation in a child process until it reaches `at`, then SIGKILLs it. */
function killedAt(at: Exclude<KillAt, undefined>, env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, ...env, QML_KILL_LEASE_MS: String(LEASE_MS), QML_KILL_AT: at },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (d) => (err += String(d)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out += String(d);
      const m = new RegExp(`AT ${at} (\\S+)\\n`).exec(out);
      if (m) {
        child.kill("SIGKILL");
        void exited.then(() => resolve(m[1]!));
      }
    });
    child.once("exit", (code) => {
      if (!new RegExp(`AT ${at} `).test(out)) reject(new Error(`the invocation exited (${code}) before reaching ${at}: ${out}${err}`));
    });
  });
}

async function workflowAcrossKills(storage: Storage, env: Record<string, string>): Promise<void> {
  const id = await storage.enqueue(new Job("order", [7], { maxAttempts: 10 }));
  const count = async (step: string) => Number((await storage.kv.get(counterKey(id, step))) ?? 0);

  expect(await killedAt("between", env)).toBe(id);
  expect(await count("reserve")).toBe(1);
  // The dead invocation's lease must run out before another may take the job.
  await sleep(LEASE_MS + 200);
  expect(await killedAt("inside", env)).toBe(id);
  expect([await count("reserve"), await count("charge")]).toEqual([1, 0]);

  // EventBridge ticks on a clock past the leases, then past the sleep.
  const registry = workflowRegistry(storage, undefined);
  const tick = async (offsetMs: number) => {
    const clock = new SkewedClock(systemClock, offsetMs);
    const h = createLambdaHandlers({ storage: () => storage, registry, clock, leaseMs: LEASE_MS, safetyMs: 100, logger: silentLogger });
    return h.scheduleHandler(scheduledEvent(), lambdaContext(5000, clock));
  };
  await tick(10_000);
  let job = (await storage.get(id))!;
  expect(job.steps.map((s) => `${s.id}:${s.status}`)).toEqual(["reserve:completed", "charge:completed", "cool-off:waiting"]);
  await tick(75_000);
  job = (await storage.get(id))!;
  expect(job.steps.at(-1)).toMatchObject({ id: "approval", status: "waiting" });
  expect((await storage.sendEvent("order.approved", { order: 7, by: "ann" })).delivered).toEqual([id]);
  await tick(80_000);
  job = (await storage.get(id))!;
  expect(job.state).toBe("succeeded");
  expect(job.result).toEqual({ reserved: { sku: "A-1" }, charge: "ch_1", shipped: { by: "ann" } });
  expect([await count("reserve"), await count("charge"), await count("ship")]).toEqual([1, 1, 1]);
  const owners = job.history.filter((h) => h.state === "processing" && h.worker?.startsWith("lambda:qml-doomed")).length;
  expect(owners).toBeGreaterThanOrEqual(2);
}

const keys = prefixes("lambda-wf-kill");
describeWithService("redis", await serviceUp("redis"), "a workflow over killed invocations, on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it("each step's work is done once and the workflow finishes", async () => {
    const ns = keys.next();
    const storage = new Storage(redisBackend(new RedisConfig(REDIS_URL).withKeyPrefix(ns)));
    try {
      await storage.migrate();
      await workflowAcrossKills(storage, { QML_KILL_BACKEND: "redis", QML_KILL_URL: REDIS_URL, QML_KILL_NAMESPACE: ns });
    } finally {
      await storage.close();
    }
  }, 60_000);
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "a workflow over killed invocations, on postgres", () => {
  afterAll(() => janitor.dropAll());
  it("each step's work is done once and the workflow finishes", async () => {
    const schema = janitor.next();
    const storage = new Storage(
      postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withMaxConnections(2).withAutoMigrate(true)),
    );
    try {
      await workflowAcrossKills(storage, { QML_KILL_BACKEND: "postgres", QML_KILL_URL: DATABASE_URL, QML_KILL_NAMESPACE: schema });
    } finally {
      await storage.close();
    }
  }, 60_000);
});
