/**
 * Kill: worker processes SIGKILLed at random while they run jobs, and
 * restarted, on Redis and on PostgreSQL.
 *
 * Invariants: every job completes; none is lost; an extra execution happens
 * only for a job whose lease expired (the job's history shows the reclaim,
 * and every execution ran under its own lease token); no job is still
 * `processing` under a killed worker's lease one lease (plus one
 * housekeeping pass) after the last kill.
 *
 * Short: 500 jobs of 10-40 ms, 3 processes, a kill every 400 ms until 80 %
 * are done, lease 1 s. Long (QML_CHAOS_LONG=1): 10,000 jobs of 20-100 ms,
 * 4 processes, a kill every 2 s, lease 2 s.
 */
import { afterAll, expect, it } from "vitest";
import { Job, JobState, type Storage } from "../../src/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { analyse, listAll } from "./analysis.js";
import { between, figures, scale, timeout, until } from "./helpers.js";
import { removeTempDirs, spawnWorker, stopAll, type ChaosWorker } from "./processes.js";
import { openRunLog, type RunLogSpec } from "./run-log.js";
import { openStore, type StoreSpec } from "./stores.js";
import type { WorkerConfig } from "./worker-process.js";

const JOBS = scale(500, 10_000);
const [MIN_MS, MAX_MS] = scale([10, 40], [20, 100]);
const PROCESSES = scale(3, 4);
const CONCURRENCY = scale(2, 5);
const KILL_EVERY_MS = scale(400, 2000);
const LEASE_MS = scale(1000, 2000);
const SCHEDULER_MS = scale(250, 500);
/** Kills stop once this share of the jobs is done, so that recovery after the last kill is observed. */
const STOP_KILLING_AT = 0.8;
/** Room for a busy machine on top of lease + housekeeping interval. */
const SLACK_MS = 1500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function finished(storage: Storage): Promise<number> {
  const s = await storage.stats({ minutes: 1, hours: 1 });
  return s.states.succeeded + s.states.failed;
}

async function killRun(label: string, spec: StoreSpec, runLogSpec: RunLogSpec): Promise<void> {
  const storage = await openStore(spec);
  const runLog = await openRunLog(runLogSpec);
  const workers: ChaosWorker[] = [];
  try {
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i += 500) {
      const batch = Array.from({ length: Math.min(500, JOBS - i) }, () => new Job("work", [between(MIN_MS, MAX_MS)], { maxAttempts: 50 }));
      ids.push(...(await storage.enqueue(batch)));
    }

    let generation = 0;
    const configFor = (slot: number): WorkerConfig => ({
      store: spec,
      runLog: runLogSpec,
      serverId: `kill-${slot}-${++generation}`,
      leaseMs: LEASE_MS,
      concurrency: CONCURRENCY,
      schedulerMs: SCHEDULER_MS,
      pollMs: 20,
    });
    for (let slot = 0; slot < PROCESSES; slot++) workers.push(await spawnWorker(configFor(slot)));
    await Promise.all(workers.map((w) => w.waitFor(/^READY /)));

    const killed = new Set<string>();
    let lastKill = 0;
    for (;;) {
      await sleep(KILL_EVERY_MS);
      if ((await finished(storage)) >= JOBS * STOP_KILLING_AT) break;
      // Kill a worker that is up and running, and never the last one up: a
      // restart takes a second on a busy machine, and jobs must keep flowing
      // for the run to end.
      const ready = workers.map((w, slot) => ({ w, slot })).filter(({ w }) => w.alive && w.lines.some((l) => l.startsWith("READY ")));
      if (ready.length < 2) continue;
      const { w, slot } = ready[Math.floor(Math.random() * ready.length)]!;
      await w.kill();
      killed.add(w.serverId);
      lastKill = Date.now();
      workers[slot] = await spawnWorker(configFor(slot));
    }

    // One lease after the last kill, plus one housekeeping pass, nothing the dead held may still be processing.
    let staleAfterLease: string[] = [];
    if (lastKill > 0) {
      await sleep(Math.max(0, lastKill + LEASE_MS + SCHEDULER_MS + SLACK_MS - Date.now()));
      staleAfterLease = (await listAll(storage, { state: JobState.Processing })).filter((r) => killed.has(r.leaseOwner ?? "")).map((r) => `${r.id} (${r.leaseOwner})`);
    }

    await until(async () => ((await finished(storage)) >= JOBS ? true : undefined), scale(30_000, 600_000), 200);
    const analysis = analyse(ids, await listAll(storage), await runLog.all());
    figures(
      `kill/${label}`,
      {
        jobs: JOBS,
        processes: PROCESSES,
        kills: killed.size,
        executions: analysis.executions,
        lost: analysis.lost.length,
        lease_expiries: analysis.reclaims,
        duplicates: analysis.duplicates,
        unexplained: analysis.unexplained.length,
        stale_after_lease: staleAfterLease.length,
      },
      analysis.unexplained.length === 0 ? "every duplicate after a lease expiry" : "UNEXPLAINED duplicates",
    );
    expect(killed.size, "the run should have killed workers").toBeGreaterThanOrEqual(2);
    expect(analysis.lost).toEqual([]);
    expect(analysis.unexplained).toEqual([]);
    expect(analysis.badHistories).toEqual([]);
    expect(staleAfterLease).toEqual([]);
    expect(analysis.executions).toBeGreaterThanOrEqual(JOBS);
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await runLog.close();
    await storage.close();
  }
}

afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

const keys = prefixes("chaos-kill");
describeWithService("redis", await serviceUp("redis"), "chaos: kill workers on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it(
    "every job completes, none is lost, duplicates only after an expired lease",
    async () => {
      const prefix = keys.next();
      await killRun("redis", { kind: "redis", url: REDIS_URL, prefix }, { kind: "redis", url: REDIS_URL, key: `${prefix}chaos-runs` });
    },
    timeout(55_000, 900_000),
  );
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: kill workers on postgres", () => {
  afterAll(() => janitor.dropAll());
  it(
    "every job completes, none is lost, duplicates only after an expired lease",
    async () => {
      const schema = janitor.next("qml_chaos");
      await killRun("postgres", { kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 3 }, { kind: "postgres", url: DATABASE_URL, schema });
    },
    timeout(55_000, 900_000),
  );
});
