/**
 * Clock: worker processes whose wall clocks are off by ±5 minutes
 * (fixtures/skew-clock.mjs shifts Date in the process, as a badly set
 * machine would), and a clock that jumps backwards mid-run.
 *
 * - Leases: jobs that run 2.5 leases (kept by heartbeats) on a fleet with
 *   clocks at -5 min, 0 and +5 min. A lease computed on a fast clock and
 *   judged on a slow one, or the reverse, would be reclaimed early (or
 *   late); the servers follow the store's clock, so no job may be
 *   reclaimed or run twice.
 * - Recurring: a job every second on two skewed workers; after some slots
 *   have run, their finished jobs are purged (so unique keys no longer
 *   guard them) and both clocks jump back 3 s. Every slot must run exactly
 *   once.
 * - Lambda: scheduled invocations on machines 5 minutes fast and 5 minutes
 *   slow, next to a Node worker: the fast one must not reclaim the Node
 *   worker's live lease, and the Node worker must not reclaim the slow
 *   one's.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { Job, JobState, type Storage, type TickReport } from "../../src/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { analyse, countBy, listAll } from "./analysis.js";
import { figures, rand, until } from "./helpers.js";
import { SKEW_PRELOAD, removeTempDirs, startWorker, stopAll, type ChaosWorker } from "./processes.js";
import { openRunLog, type RunLogSpec } from "./run-log.js";
import { openStore, specLabel, type StoreSpec } from "./stores.js";
import { record } from "../helpers/records.js";

const SKEW = 5 * 60_000;
const LEASE_MS = 1000;
const JOB_MS = 2500;
const JUMP_MS = -3000;

/** Starts a worker with a skewed clock and checks that its clock really is off by that much. */
async function skewedWorker(spec: StoreSpec, runLog: RunLogSpec, skewMs: number, tag: string): Promise<ChaosWorker> {
  const before = Date.now();
  const w = await startWorker(
    { store: spec, runLog, serverId: `clock-${tag}-${rand()}`, leaseMs: LEASE_MS, concurrency: 3, schedulerMs: 200, pollMs: 20 },
    { skewMs },
  );
  const theirs = Number((await w.waitFor(/^READY \S+ (\d+)$/))[1]);
  expect(Math.abs(theirs - Date.now() - skewMs), "the worker's clock is skewed as asked").toBeLessThan(Date.now() - before + 1000);
  return w;
}

async function leasesUnderSkew(spec: StoreSpec, runLogSpec: RunLogSpec): Promise<void> {
  const storage = await openStore(spec);
  const runLog = await openRunLog(runLogSpec);
  const workers: ChaosWorker[] = [];
  try {
    for (const [skew, tag] of [
      [-SKEW, "slow"],
      [0, "true"],
      [SKEW, "fast"],
    ] as const)
      workers.push(await skewedWorker(spec, runLogSpec, skew, tag));
    const ids = await storage.enqueue(Array.from({ length: 12 }, () => new Job("work", [JOB_MS], { maxAttempts: 5 })));
    await until(async () => ((await storage.stats({ minutes: 1, hours: 1 })).states.succeeded >= ids.length ? true : undefined), 30_000, 100);
    const records = await listAll(storage);
    const runs = await runLog.all();
    const analysis = analyse(ids, records, runs);
    const reclaims = records.reduce((n, r) => n + r.history.filter((h) => h.reason?.startsWith("lease expired")).length, 0);
    const byServer = countBy(runs, (r) => r.server);
    figures(`clock-skew/${specLabel(spec)}`, {
      jobs: ids.length,
      skews: "-5min,0,+5min",
      job_ms: JOB_MS,
      lease_ms: LEASE_MS,
      premature_reclaims: reclaims,
      duplicates: analysis.duplicates,
      lost: analysis.lost.length,
    });
    // Every worker, skewed ones included, ran jobs.
    for (const w of workers) expect(byServer.get(w.serverId) ?? 0, `${w.serverId} ran jobs`).toBeGreaterThan(0);
    expect(reclaims).toBe(0);
    expect(analysis.duplicates).toBe(0);
    expect(analysis.lost).toEqual([]);
    expect(analysis.badHistories).toEqual([]);
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await runLog.close();
    await storage.close();
  }
}

async function recurringAcrossJump(spec: StoreSpec, runLogSpec: RunLogSpec): Promise<void> {
  const storage: Storage = await openStore(spec);
  const runLog = await openRunLog(runLogSpec);
  const workers: ChaosWorker[] = [];
  const id = `every-second-${rand()}`;
  try {
    workers.push(await skewedWorker(spec, runLogSpec, -SKEW, "slow"), await skewedWorker(spec, runLogSpec, SKEW, "fast"));
    await storage.addOrUpdateRecurring(id, "* * * * * *", "tick");
    const slotsRun = async () => new Set((await runLog.all()).map((r) => r.note));
    await until(async () => ((await slotsRun()).size >= 3 ? true : undefined), 20_000, 100);

    // The unique keys of the slots run so far are gone with their jobs: only lastSlot stands between a slow clock and a second firing.
    const purged = await storage.purgeFinished();
    const beforeJump = Math.max(...[...(await slotsRun())].map((s) => Date.parse(s!)));
    for (const w of workers) w.send(`JUMP ${JUMP_MS}`);
    await Promise.all(workers.map((w) => w.waitFor(/^SKEWED /)));
    // Run on until two slots later than any before the jump have run.
    await until(async () => ([...(await slotsRun())].filter((s) => Date.parse(s!) > beforeJump).length >= 2 ? true : undefined), 20_000, 100);
    await storage.deleteRecurring(id);

    const runs = await runLog.all();
    const perSlot = countBy(runs, (r) => r.note);
    const twice = [...perSlot].filter(([, n]) => n > 1).map(([slot, n]) => `${slot} ran ${n} times`);
    figures(`clock-jump/${specLabel(spec)}`, {
      cron: "every second",
      slots: perSlot.size,
      purged_before_jump: purged,
      jump_ms: JUMP_MS,
      slots_run_twice: twice.length,
    });
    expect(purged).toBeGreaterThan(0);
    expect(twice).toEqual([]);
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await runLog.close();
    await storage.close();
  }
}

const LAMBDA = fileURLToPath(new URL("./fixtures/lambda-invocation.ts", import.meta.url));

/** One scheduled invocation in a process whose clock is `skewMs` off; resolves with its report and whether it started `jobId`. */
function skewedInvocation(spec: StoreSpec, skewMs: number, budgetMs: number, queues: string): Promise<{ report: TickReport; started: string[] }> {
  const child = spawn(process.execPath, ["--import", "tsx", "--import", SKEW_PRELOAD, LAMBDA], {
    env: {
      ...process.env,
      QML_CHAOS_STORE: JSON.stringify(spec),
      QML_CHAOS_SKEW_MS: String(skewMs),
      QML_CHAOS_BUDGET_MS: String(budgetMs),
      QML_CHAOS_LEASE_MS: String(LEASE_MS),
      QML_CHAOS_QUEUES: queues,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += String(d)));
  child.stderr.on("data", (d: Buffer) => (err += String(d)));
  return new Promise((resolve, reject) => {
    child.once("exit", () => {
      const m = /^REPORT (.*)$/m.exec(out);
      if (!m) return reject(new Error(`the invocation ended without a report: ${out}${err}`));
      resolve({ report: JSON.parse(m[1]!) as TickReport, started: [...out.matchAll(/^STARTED (\S+)$/gm)].map((x) => x[1]!) });
    });
  });
}

async function lambdaUnderSkew(spec: StoreSpec, runLogSpec: RunLogSpec): Promise<void> {
  const storage = await openStore(spec);
  let node: ChaosWorker | undefined;
  try {
    node = await startWorker({
      store: spec,
      runLog: runLogSpec,
      serverId: `clock-node-${rand()}`,
      leaseMs: LEASE_MS,
      concurrency: 1,
      schedulerMs: 200,
      pollMs: 20,
    });
    // A: held by the Node worker for four leases, kept by heartbeats.
    const a = await storage.enqueue(new Job("work", [4 * LEASE_MS], { maxAttempts: 5 }));
    await until(async () => ((await record(storage, a))?.state === JobState.Processing ? true : undefined), 10_000, 20);
    const fast = await skewedInvocation(spec, SKEW, 1500, "default");
    // B: only Lambdas take its queue; the slow one runs it for 2.5 leases.
    const b = await storage.enqueue(new Job("work", [2.5 * LEASE_MS], { queue: "lambda", maxAttempts: 5 }));
    const slow = await skewedInvocation(spec, -SKEW, 2.5 * LEASE_MS + 2000, "lambda");
    await until(async () => ((await record(storage, a))?.state === JobState.Succeeded ? true : undefined), 15_000, 50);
    const [ra, rb] = await Promise.all([record(storage, a), record(storage, b)]);
    const expired = [ra, rb].reduce((n, r) => n + (r?.history.filter((h) => h.reason?.startsWith("lease expired")).length ?? 0), 0);
    figures(`clock-skew/lambda-on-${specLabel(spec)}`, {
      fast_invocation_reclaimed: fast.report.reclaimed,
      fast_invocation_took_live_job: fast.started.includes(a),
      slow_invocation_succeeded: slow.report.succeeded,
      premature_reclaims: expired,
    });
    expect(fast.report.reclaimed).toBe(0);
    expect(fast.started).not.toContain(a);
    expect(slow.report.succeeded).toBe(1);
    expect(expired).toBe(0);
    expect(ra).toMatchObject({ state: JobState.Succeeded, attempts: 1 });
    expect(rb).toMatchObject({ state: JobState.Succeeded, attempts: 1 });
  } finally {
    await node?.kill();
    await storage.close();
  }
}

afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

const keys = prefixes("chaos-clock");
describeWithService("redis", await serviceUp("redis"), "chaos: skewed clocks on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it("workers at -5 min, 0 and +5 min reclaim no live lease early", async () => {
    const prefix = keys.next();
    await leasesUnderSkew({ kind: "redis", url: REDIS_URL, prefix }, { kind: "redis", url: REDIS_URL, key: `${prefix}chaos-runs` });
  }, 45_000);
  it("a recurring job fires once per slot across a clock jump backwards", async () => {
    const prefix = keys.next();
    await recurringAcrossJump({ kind: "redis", url: REDIS_URL, prefix }, { kind: "redis", url: REDIS_URL, key: `${prefix}chaos-runs` });
  }, 45_000);
  it("Lambda invocations 5 minutes fast or slow reclaim no live lease early, and lose none of theirs", async () => {
    const prefix = keys.next();
    await lambdaUnderSkew({ kind: "redis", url: REDIS_URL, prefix }, { kind: "redis", url: REDIS_URL, key: `${prefix}chaos-runs` });
  }, 45_000);
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: skewed clocks on postgres", () => {
  afterAll(() => janitor.dropAll());
  it("workers at -5 min, 0 and +5 min reclaim no live lease early", async () => {
    const schema = janitor.next("qml_chaos");
    await leasesUnderSkew({ kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 2 }, { kind: "postgres", url: DATABASE_URL, schema });
  }, 45_000);
  it("a recurring job fires once per slot across a clock jump backwards", async () => {
    const schema = janitor.next("qml_chaos");
    await recurringAcrossJump(
      { kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 2 },
      { kind: "postgres", url: DATABASE_URL, schema },
    );
  }, 45_000);
});
