/**
 * Poison pill: a job that crashes its worker process every time it runs (an
 * exception nobody catches), among a steady stream of ordinary jobs, on a
 * fleet of three worker processes that a supervisor restarts when they die.
 *
 * Each crash leaves the job leased to a dead process; the lease runs out,
 * a surviving worker reclaims it (the attempt counts) and the next claimer
 * crashes too, until the reclaim finds no attempts left and fails it. The
 * invariants: the pill ends `failed` after exactly its max attempts (one
 * crash each); the ordinary jobs keep completing while it makes its rounds,
 * and every one of them ends succeeded, duplicates only after an expired
 * lease.
 */
import { afterAll, expect, it } from "vitest";
import { Job, JobState } from "../../src/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { analyse, listAll } from "./analysis.js";
import { between, figures, rand, until } from "./helpers.js";
import { removeTempDirs, spawnWorker, stopAll, type ChaosWorker } from "./processes.js";
import { openRunLog, type RunLogSpec } from "./run-log.js";
import { openStore, specLabel, type StoreSpec } from "./stores.js";
import type { WorkerConfig } from "./worker-process.js";
import { record } from "../helpers/records.js";

const MAX_ATTEMPTS = 3;
const PROCESSES = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function poisonRun(spec: StoreSpec, runLogSpec: RunLogSpec): Promise<void> {
  const storage = await openStore(spec);
  const runLog = await openRunLog(runLogSpec);
  const workers: ChaosWorker[] = [];
  let supervising = true;
  const crashes: Array<{ server: string; code: number; at: number }> = [];
  try {
    let generation = 0;
    const configFor = (slot: number): WorkerConfig => ({
      store: spec,
      runLog: runLogSpec,
      serverId: `poison-${slot}-${++generation}-${rand()}`,
      leaseMs: 1000,
      concurrency: 2,
      schedulerMs: 200,
      pollMs: 20,
    });
    // The supervisor: a worker that dies is started again (systemd, Kubernetes, pm2 …).
    const supervise = async (slot: number): Promise<void> => {
      const w = await spawnWorker(configFor(slot));
      workers[slot] = w;
      void w.exited.then((code) => {
        if (!supervising) return;
        crashes.push({ server: w.serverId, code, at: Date.now() });
        void supervise(slot);
      });
    };
    for (let slot = 0; slot < PROCESSES; slot++) await supervise(slot);
    await Promise.all(workers.map((w) => w.waitFor(/^READY /)));

    const pill = await storage.enqueue(new Job("crash", [], { maxAttempts: MAX_ATTEMPTS }));
    const ordinary: string[] = [];
    const pillFailed = until(
      async () => {
        const r = await record(storage, pill);
        return r?.state === JobState.Failed ? r : undefined;
      },
      40_000,
      100,
    );
    let producing = true;
    const producer = (async () => {
      while (producing) {
        ordinary.push(...(await storage.enqueue(Array.from({ length: 4 }, () => new Job("work", [between(5, 30)], { maxAttempts: 20 })))));
        await sleep(100);
      }
    })();
    const failed = await pillFailed;
    const failedAt = Date.now();
    producing = false;
    await producer;
    await until(
      async () => {
        const s = await storage.stats({ minutes: 1, hours: 1 });
        return s.states.succeeded >= ordinary.length ? true : undefined;
      },
      30_000,
      100,
    );
    supervising = false;

    const records = await listAll(storage);
    const runs = await runLog.all();
    const analysis = analyse(ordinary, records, runs);
    const firstCrash = crashes[0]?.at ?? failedAt;
    const flowedMeanwhile = records.filter(
      (r) => r.name === "work" && r.finishedAt !== undefined && r.finishedAt > firstCrash && r.finishedAt < failedAt,
    ).length;
    const pillRuns = runs.filter((r) => r.id === pill);
    figures(`poison-pill/${specLabel(spec)}`, {
      pill_attempts: failed?.attempts ?? -1,
      pill_state: failed?.state ?? "not failed",
      crashes: crashes.length,
      ordinary_jobs: ordinary.length,
      ordinary_done_during_crashes: flowedMeanwhile,
      lost: analysis.lost.length,
      duplicates: analysis.duplicates,
      unexplained: analysis.unexplained.length,
    });
    expect(failed).toBeDefined();
    expect(failed).toMatchObject({ state: JobState.Failed, attempts: MAX_ATTEMPTS });
    expect(failed!.history.at(-1)!.reason).toMatch(/^lease expired; no attempts left/);
    expect(pillRuns.map((r) => r.attempt).sort()).toEqual(Array.from({ length: MAX_ATTEMPTS }, (_, i) => i + 1));
    expect(crashes.length).toBe(MAX_ATTEMPTS);
    expect(crashes.every((c) => c.code === 1)).toBe(true);
    expect(flowedMeanwhile).toBeGreaterThan(0);
    expect(analysis.lost).toEqual([]);
    expect(analysis.unexplained).toEqual([]);
    expect(analysis.badHistories).toEqual([]);
  } finally {
    supervising = false;
    await Promise.all(workers.map((w) => w.kill()));
    await runLog.close();
    await storage.close();
  }
}

afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

const keys = prefixes("chaos-poison");
describeWithService("redis", await serviceUp("redis"), "chaos: poison pill on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it("the pill fails after its max attempts, one crash each, and other jobs keep flowing", async () => {
    const prefix = keys.next();
    await poisonRun({ kind: "redis", url: REDIS_URL, prefix }, { kind: "redis", url: REDIS_URL, key: `${prefix}chaos-runs` });
  }, 55_000);
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: poison pill on postgres", () => {
  afterAll(() => janitor.dropAll());
  it("the pill fails after its max attempts, one crash each, and other jobs keep flowing", async () => {
    const schema = janitor.next("qml_chaos");
    await poisonRun({ kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 2 }, { kind: "postgres", url: DATABASE_URL, schema });
  }, 55_000);
});
