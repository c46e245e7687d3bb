/**
 * An invocation killed by the platform mid-job (a real process, SIGKILL)
 * loses no job: after its lease the next scheduled invocation reclaims the
 * job and finishes it. Runs on Redis and on PostgreSQL.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { Job, Storage, WorkerRegistry, WorkerResult, silentLogger, systemClock } from "../../src/index.js";
import { SkewedClock } from "../../src/core/clock.js";
import { createLambdaHandlers } from "../../src/adapters/runtime/lambda/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { lambdaContext, scheduledEvent } from "./aws-events.js";

const LEASE_MS = 3000;
const FIXTURE = join(import.meta.dirname, "fixtures", "killed-invocation.ts");

/** Starts the doomed invocation; resolves once its job is running, with a kill switch. */
function startDoomedInvocation(env: Record<string, string>): Promise<{ jobId: string; kill(): Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, ...env, QML_KILL_LEASE_MS: String(LEASE_MS) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (d) => (err += String(d)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out += String(d);
      const m = /STARTED (\S+)\n/.exec(out);
      if (m) resolve({ jobId: m[1]!, kill: async () => void (child.kill("SIGKILL"), await exited) });
    });
    child.once("exit", (code) => reject(new Error(`the invocation exited (${code}) before its job started: ${out}${err}`)));
  });
}

async function killedThenRecovered(storage: Storage, env: Record<string, string>): Promise<void> {
  const id = await storage.enqueue(new Job("hang", []));
  const doomed = await startDoomedInvocation(env);
  expect(doomed.jobId).toBe(id);
  const held = (await storage.get(id))!;
  expect(held).toMatchObject({ state: "processing", attempts: 1 });
  expect(held.leaseOwner).toMatch(/^lambda:qml-doomed:/);
  await doomed.kill();

  // Now: the lease still holds, nobody may take the job.
  const registry = new WorkerRegistry().register("hang", () => WorkerResult.success("recovered"));
  const now = createLambdaHandlers({ storage: () => storage, registry, safetyMs: 100, logger: silentLogger });
  expect(await now.scheduleHandler(scheduledEvent(), lambdaContext(3000))).toMatchObject({ reclaimed: 0, processed: 0 });

  // A minute later (the next EventBridge tick), the lease has run out.
  const later = new SkewedClock(systemClock, 60_000);
  const next = createLambdaHandlers({ storage: () => storage, registry, clock: later, safetyMs: 100, logger: silentLogger });
  expect(await next.scheduleHandler(scheduledEvent(), lambdaContext(3000, later))).toMatchObject({ reclaimed: 1, succeeded: 1 });
  const done = (await storage.get(id))!;
  expect(done).toMatchObject({ state: "succeeded", attempts: 2, result: "recovered" });
  expect(done.history.map((h) => h.state)).toEqual(["enqueued", "processing", "enqueued", "processing", "succeeded"]);
}

const keys = prefixes("lambda-kill");
describeWithService("redis", await serviceUp("redis"), "killed invocation on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it("the job is finished by the next invocation after the lease", async () => {
    const ns = keys.next();
    const storage = new Storage(redisBackend(new RedisConfig(REDIS_URL).withKeyPrefix(ns)));
    try {
      await storage.migrate();
      await killedThenRecovered(storage, { QML_KILL_BACKEND: "redis", QML_KILL_URL: REDIS_URL, QML_KILL_NAMESPACE: ns });
    } finally {
      await storage.close();
    }
  });
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "killed invocation on postgres", () => {
  afterAll(() => janitor.dropAll());
  it("the job is finished by the next invocation after the lease", async () => {
    const schema = janitor.next();
    const storage = new Storage(
      postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withMaxConnections(2).withAutoMigrate(true)),
    );
    try {
      await killedThenRecovered(storage, { QML_KILL_BACKEND: "postgres", QML_KILL_URL: DATABASE_URL, QML_KILL_NAMESPACE: schema });
    } finally {
      await storage.close();
    }
  });
});
