/**
 * Fence, end to end with real servers, on every backend and driver.
 *
 * Worker A claims three jobs and the first handler it starts blocks
 * synchronously past the lease (the whole process is stuck: no heartbeat
 * goes out, no timer runs). Server B, started after A's claim, reclaims the jobs when the
 * lease runs out and completes them. Then A unblocks, as a stuck worker
 * does, and carries on with what it had: a success (complete), a failure
 * (fail), a heartbeat and a progress write, all under its old lease token.
 * The store must refuse every one of them: the jobs stay exactly as B left
 * them.
 *
 * On the network stores and SQLite (two processes on one file) A is a
 * separate process (bundled worker), so B runs while A is stuck. The memory store lives in one process, where a
 * blocked handler blocks B too: there A's block ends first, B's overdue
 * housekeeping reclaims and completes before A's overdue heartbeat (timers
 * fire in deadline order), A's heartbeat is refused and its processor drops
 * the outcome; the handler's own late complete, fail, heartbeat and
 * progress go to the store directly and are refused.
 */
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import {
  BackgroundJobServer,
  Job,
  JobState,
  ServerConfig,
  Storage,
  WorkerRegistry,
  WorkerResult,
  memoryBackend,
  silentLogger,
  type JobRecord,
} from "../../src/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { figures, rand } from "./helpers.js";
import { removeTempDirs, startWorker, stopAll, tempPath } from "./processes.js";
import { openStore, specLabel, sqliteSpec, type StoreSpec } from "./stores.js";
import { record } from "../helpers/records.js";

const A_LEASE_MS = 600;
const STALE = "stale owner";

/** B: takes whatever it is given and succeeds. */
function serverB(storage: Storage, names: string[]): BackgroundJobServer {
  const registry = new WorkerRegistry();
  for (const n of names) registry.register(n, () => WorkerResult.success("from B"));
  return new BackgroundJobServer(
    storage,
    registry,
    new ServerConfig(`fence-B-${rand()}`).leaseDuration(10_000).schedulerInterval(20).pollingInterval(20).logger(silentLogger),
  );
}

function waitSucceeded(server: BackgroundJobServer, ids: string[]): Promise<void> {
  const left = new Set(ids);
  return new Promise((resolve) => {
    server.on("job:succeeded", (e) => {
      left.delete(e.job.id);
      if (left.size === 0) resolve();
    });
  });
}

/** B's result, B's history: enqueued, processing (A), enqueued (lease expired), processing (B), succeeded (B). */
function expectCompletedByB(r: JobRecord, aServerId: string): void {
  expect(r).toMatchObject({ state: JobState.Succeeded, result: "from B", attempts: 2 });
  expect(r.progress).toBeUndefined();
  expect(r.history.map((h) => h.state)).toEqual(["enqueued", "processing", "enqueued", "processing", "succeeded"]);
  expect(r.history[1]!.worker).toBe(aServerId);
  expect(r.history[2]!.reason).toMatch(/^lease expired/);
  expect(r.history[3]!.worker).toMatch(/^fence-B-/);
  expect(r.history.filter((h) => (h.worker ?? "").startsWith(aServerId)).length).toBe(1);
}

async function fenceAcrossProcesses(spec: StoreSpec): Promise<void> {
  const storage = await openStore(spec);
  const flag = tempPath("unblock");
  const a = await startWorker({
    store: spec,
    runLog: { kind: "memory" },
    serverId: `fence-A-${rand()}`,
    leaseMs: A_LEASE_MS,
    concurrency: 3,
    schedulerMs: 60_000,
    pollMs: 20,
    enableScheduler: false,
    flagFile: flag,
  });
  const b = serverB(storage, ["fence-complete", "fence-fail", "fence-heartbeat"]);
  try {
    const jobs = {
      complete: new Job("fence-complete", [], { maxAttempts: 2 }),
      fail: new Job("fence-fail", [], { maxAttempts: 2 }),
      heartbeat: new Job("fence-heartbeat", [], { maxAttempts: 2 }),
    };
    const ids = await storage.enqueue(Object.values(jobs));
    // A claims the three in one call and blocks in the first handler it starts (the others start once it unblocks).
    await a.waitFor(/^STARTED \S+ 1$/, "A starting a job");
    const held = await Promise.all(ids.map((id) => record(storage, id)));
    expect(held.map((r) => [r?.state, r?.leaseOwner])).toEqual(ids.map(() => [JobState.Processing, a.serverId]));

    const done = waitSucceeded(b, ids);
    await b.start();
    await done;
    await b.stop();
    const before = await Promise.all(ids.map((id) => record(storage, id)));

    writeFileSync(flag, "unblock");
    // The store's answers to A, as A's processor and handler saw them.
    const lostComplete = await a.waitFor(new RegExp(`^LOST ${jobs.complete.id} (.*)$`));
    const lostFail = await a.waitFor(new RegExp(`^LOST ${jobs.fail.id} (.*)$`));
    const heartbeat = await a.waitFor(new RegExp(`^HEARTBEAT ${jobs.heartbeat.id} (\\w+)$`));
    const progress = await a.waitFor(new RegExp(`^PROGRESS ${jobs.heartbeat.id} (\\w+)$`));
    const after = await Promise.all(ids.map((id) => record(storage, id)));

    figures(`fence/${specLabel(spec)}`, {
      jobs: 3,
      reclaimed_by_b: before.filter((r) => r?.history.some((h) => h.reason?.startsWith("lease expired"))).length,
      stale_writes: 4,
      stale_applied: after.filter((r, i) => JSON.stringify(r) !== JSON.stringify(before[i])).length,
    });
    expect(lostComplete[1]).toBe("lease lost before the outcome was written");
    expect(lostFail[1]).toBe("lease lost before the outcome was written");
    expect(heartbeat[1]).toBe("false");
    expect(progress[1]).toBe("false");
    expect(after).toEqual(before);
    for (const r of after) expectCompletedByB(r!, a.serverId);
  } finally {
    await b.stop();
    await a.kill();
    await storage.close();
  }
}

afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

it("fence on memory: a worker blocked past its lease changes nothing once another server took the job", async () => {
  const storage = new Storage(memoryBackend());
  const aId = `fence-A-${rand()}`;
  const lease = 3000;
  let bStarted!: () => void;
  const bReady = new Promise<void>((r) => (bStarted = r));
  const late: Record<string, unknown> = {};
  let lateDone!: () => void;
  const lateWrites = new Promise<void>((r) => (lateDone = r));
  const registryA = new WorkerRegistry().register("fence-block", async (job, ctx) => {
    await bReady;
    // Stuck for one and a half leases: nothing else in this process runs meanwhile.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, lease * 1.5);
    await new Promise((r) => setTimeout(r, 0));
    // A zombie that ignores the core and writes anyway, with its old token.
    const token = ctx.leaseToken;
    const now = storage.clock.now();
    late.heartbeat = await ctx.heartbeat();
    late.progress = await ctx.progress(STALE);
    late.complete = (
      await storage.driver.complete([{ id: job.id, token, state: JobState.Succeeded, result: STALE, reason: "succeeded", worker: aId }], now)
    )[0]!.status;
    late.fail = (
      await storage.driver.complete(
        [{ id: job.id, token, state: JobState.Failed, error: { name: "Error", message: STALE }, reason: "failed", worker: aId }],
        now,
      )
    )[0]!.status;
    late.extend = (await storage.driver.extendLeases([{ id: job.id, token }], lease, now)).length;
    lateDone();
    return WorkerResult.success(STALE);
  });
  const a = new BackgroundJobServer(
    storage,
    registryA,
    new ServerConfig(aId).leaseDuration(lease).enableScheduler(false).workerCount(1).pollingInterval(10).logger(silentLogger),
  );
  const b = serverB(storage, ["fence-block"]);
  const lost = new Promise<string>((r) => a.on("job:lost", (e) => r(e.reason)));
  try {
    const started = new Promise<void>((r) => a.on("job:start", () => r()));
    await a.start();
    const id = await storage.enqueue(new Job("fence-block", [], { maxAttempts: 2 }));
    await started;
    const done = waitSucceeded(b, [id]);
    await b.start();
    bStarted();
    await done;
    const before = await record(storage, id);
    await lateWrites;
    const reason = await lost;
    const after = await record(storage, id);
    figures("fence/memory", { jobs: 1, reclaimed_by_b: 1, stale_writes: 5, stale_applied: JSON.stringify(after) === JSON.stringify(before) ? 0 : 1 });
    expect(reason).toBe("lease lost while running");
    expect(late).toEqual({ heartbeat: false, progress: false, complete: "lost", fail: "lost", extend: 0 });
    expect(after).toEqual(before);
    expectCompletedByB(after!, aId);
  } finally {
    await a.stop(0);
    await b.stop(0);
  }
});

it("fence on sqlite: two processes on one file, the stale owner's complete, fail, heartbeat and progress change nothing", () =>
  fenceAcrossProcesses(sqliteSpec(tempPath("fence.db"))));

const keys = prefixes("chaos-fence");
describeWithService("redis", await serviceUp("redis"), "chaos: fence on redis", () => {
  let gateway: UpstashGateway;
  beforeAll(async () => {
    gateway = await startUpstashGateway({ redisUrl: REDIS_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });
  it("over TCP (ioredis): the stale owner's complete, fail, heartbeat and progress change nothing", () =>
    fenceAcrossProcesses({ kind: "redis", url: REDIS_URL, prefix: keys.next() }));
  it("over the Upstash REST API: the stale owner's complete, fail, heartbeat and progress change nothing", () =>
    fenceAcrossProcesses({ kind: "upstash", url: gateway.url, token: gateway.token, prefix: keys.next() }));
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: fence on postgres", () => {
  let gateway: NeonGateway;
  beforeAll(async () => {
    gateway = await startNeonGateway({ databaseUrl: DATABASE_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await janitor.dropAll();
  });
  it("over pg: the stale owner's complete, fail, heartbeat and progress change nothing", () =>
    fenceAcrossProcesses({ kind: "postgres", driver: "pg", url: DATABASE_URL, schema: janitor.next("qml_chaos"), maxConnections: 2 }));
  it("over the Neon Pool (WebSocket): the stale owner's complete, fail, heartbeat and progress change nothing", () =>
    fenceAcrossProcesses({
      kind: "postgres",
      driver: "neon-ws",
      url: DATABASE_URL,
      schema: janitor.next("qml_chaos"),
      wsGateway: `${gateway.host}:${gateway.port}`,
      maxConnections: 2,
    }));
  it("over neon() (HTTP): the stale owner's complete, fail, heartbeat and progress change nothing", () =>
    fenceAcrossProcesses({
      kind: "postgres",
      driver: "neon-http",
      url: DATABASE_URL,
      schema: janitor.next("qml_chaos"),
      fetchEndpoint: gateway.fetchEndpoint,
    }));
});
