/**
 * Kill: worker processes SIGKILLed at random while they run jobs, and
 * restarted, on Redis and on PostgreSQL; on SQLite, the one server process
 * on its file, SIGKILLed and restarted on the same file.
 *
 * Invariants: every job completes; none is lost; an extra execution happens
 * only for a job whose lease expired (the job's history shows the reclaim,
 * and every execution ran under its own lease token); no job is still
 * `processing` under a killed worker's lease one lease (plus one
 * housekeeping pass) after the last kill.
 *
 * Short: 500 jobs of 10-40 ms, 3 processes, a kill every 400 ms until 80 %
 * are done, lease 1 s. Long (QML_CHAOS_LONG=1): 10,000 jobs of 20-100 ms,
 * 4 processes, a kill every 2 s, lease 2 s. SQLite: the same jobs, one
 * process (concurrency 4, long 20), killed 3 times (long: 10) and restarted
 * at once: a SIGKILL keeps every commit (WAL), and the jobs the dead process
 * held come back when their leases end.
 *
 * With limits (Redis, PostgreSQL): every job under a concurrency key (3
 * keys, limit 1 each: fewer than the workers' slots, so the limit binds),
 * the processing jobs sampled from the store every 50 ms: no key ever has
 * more than its limit, the jobs a killed worker held included (their slots
 * stay taken until their leases end and the reclaim gives them back).
 *
 * With flows (Redis, PostgreSQL): the jobs are flows of a parent and 4
 * children; each parent's run writes what it saw of its children: no
 * parent ran (nor was released, by its history) before every child had
 * succeeded, whichever process recorded the last child's outcome or was
 * killed between recording it and settling the parent (the beat's sweep
 * settles those).
 */
import { afterAll, describe, expect, it } from "vitest";
import { Job, JobState, type JobRecord, type Storage } from "../../src/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { analyse, listAll } from "./analysis.js";
import { between, figures, scale, timeout, until } from "./helpers.js";
import { removeTempDirs, spawnWorker, stopAll, tempPath, type ChaosWorker } from "./processes.js";
import { openRunLog, type RunLogSpec } from "./run-log.js";
import { betterSqlite3Path, openStore, sqliteSpec, type StoreSpec } from "./stores.js";
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
/** How far apart two processes' store-aligned clocks may be when a parent's release is compared with its children's finish times. */
const CLOCK_SLACK_MS = 250;
/** Room for a busy machine on top of lease + housekeeping interval. */
const SLACK_MS = 1500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The limits run: 3 keys of limit 1 against PROCESSES × CONCURRENCY slots. */
const LIMITED = { processes: PROCESSES, concurrency: CONCURRENCY, limits: { keys: 3, limit: 1 }, jobs: scale(300, 3000) };
/** The flows run: 100 flows (long: 2,000) of a parent and 4 children. */
const FLOWS = { processes: PROCESSES, concurrency: CONCURRENCY, flows: { children: 4 }, jobs: scale(500, 10_000) };

async function finished(storage: Storage): Promise<number> {
  const s = await storage.stats({ minutes: 1, hours: 1 });
  return s.states.succeeded + s.states.failed;
}

interface KillOptions {
  processes: number;
  concurrency: number;
  /** Stop killing after this many (default: until STOP_KILLING_AT of the jobs are done). */
  kills?: number;
  /** Every job under one of `keys` concurrency keys, each limited to `limit`. */
  limits?: { keys: number; limit: number };
  /** Jobs to run (default JOBS). */
  jobs?: number;
  /** The jobs as flows: a parent ("gather") waiting for `children` jobs each. */
  flows?: { children: number };
}

/** The most processing jobs seen under one concurrency key, sampled every 50 ms until stopped. */
function sampleLimits(storage: Storage): { stop(): Promise<number>; samples(): number } {
  let most = 0;
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const perKey = new Map<string, number>();
      for (const r of await listAll(storage, { state: JobState.Processing })) {
        if (r.concurrencyKey !== undefined) perKey.set(r.concurrencyKey, (perKey.get(r.concurrencyKey) ?? 0) + 1);
      }
      most = Math.max(most, ...perKey.values());
      samples++;
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return most;
    },
    samples: () => samples,
  };
}

async function killRun(
  label: string,
  spec: StoreSpec,
  runLogSpec: RunLogSpec,
  options: KillOptions = { processes: PROCESSES, concurrency: CONCURRENCY },
): Promise<void> {
  const storage = await openStore(spec);
  const runLog = await openRunLog(runLogSpec);
  const workers: ChaosWorker[] = [];
  const jobs = options.jobs ?? JOBS;
  const limits = options.limits;
  try {
    const ids: string[] = [];
    const parents: string[] = [];
    for (let i = 0; options.flows && i < jobs; i += options.flows.children + 1) {
      const tree = await storage.enqueueFlow({
        job: new Job("gather", [between(MIN_MS, MAX_MS)], { maxAttempts: 50 }),
        children: Array.from({ length: options.flows.children }, () => ({ job: new Job("work", [between(MIN_MS, MAX_MS)], { maxAttempts: 50 }) })),
      });
      parents.push(tree.id);
      ids.push(tree.id, ...tree.children.map((c) => c.id));
    }
    for (let i = 0; !options.flows && i < jobs; i += 500) {
      const batch = Array.from(
        { length: Math.min(500, jobs - i) },
        (_, k) =>
          new Job("work", [between(MIN_MS, MAX_MS)], {
            maxAttempts: 50,
            ...(limits ? { concurrency: { key: `tenant:${(i + k) % limits.keys}`, limit: limits.limit } } : {}),
          }),
      );
      ids.push(...(await storage.enqueue(batch)));
    }
    const sampler = limits ? sampleLimits(storage) : undefined;

    let generation = 0;
    const configFor = (slot: number): WorkerConfig => ({
      store: spec,
      runLog: runLogSpec,
      serverId: `kill-${slot}-${++generation}`,
      leaseMs: LEASE_MS,
      concurrency: options.concurrency,
      schedulerMs: SCHEDULER_MS,
      pollMs: 20,
    });
    for (let slot = 0; slot < options.processes; slot++) workers.push(await spawnWorker(configFor(slot)));
    await Promise.all(workers.map((w) => w.waitFor(/^READY /)));

    const killed = new Set<string>();
    let lastKill = 0;
    for (;;) {
      await sleep(KILL_EVERY_MS);
      if (options.kills !== undefined && killed.size >= options.kills) break;
      if ((await finished(storage)) >= jobs * STOP_KILLING_AT) break;
      // Kill a worker that is up and running, and never the last one up
      // when there are several: a restart takes a second on a busy machine,
      // and jobs must keep flowing for the run to end. A lone server is
      // killed and restarted on its own.
      const ready = workers.map((w, slot) => ({ w, slot })).filter(({ w }) => w.alive && w.lines.some((l) => l.startsWith("READY ")));
      if (ready.length < Math.min(2, options.processes)) continue;
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
      staleAfterLease = (await listAll(storage, { state: JobState.Processing }))
        .filter((r) => killed.has(r.leaseOwner ?? ""))
        .map((r) => `${r.id} (${r.leaseOwner})`);
    }

    await until(async () => ((await finished(storage)) >= jobs ? true : undefined), scale(30_000, 600_000), 200);
    const mostPerKey = sampler ? await sampler.stop() : undefined;
    const records = await listAll(storage);
    const runs = await runLog.all();
    const analysis = analyse(ids, records, runs);
    const early = options.flows ? parentsReleasedEarly(parents, records, runs) : [];
    figures(
      `kill/${label}`,
      {
        jobs,
        ...(limits && mostPerKey !== undefined ? { key_limit: limits.limit, most_running_per_key: mostPerKey, limit_samples: sampler!.samples() } : {}),
        ...(options.flows ? { flows: parents.length, parents_released_early: early.length } : {}),
        processes: options.processes,
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
    expect(killed.size, "the run should have killed workers").toBeGreaterThanOrEqual(options.kills ?? 2);
    expect(analysis.lost).toEqual([]);
    expect(analysis.unexplained).toEqual([]);
    expect(analysis.badHistories).toEqual([]);
    expect(staleAfterLease).toEqual([]);
    expect(early).toEqual([]);
    expect(analysis.executions).toBeGreaterThanOrEqual(jobs);
    if (limits) {
      expect(mostPerKey).toBeLessThanOrEqual(limits.limit);
      // The sampler saw the keys busy: the limit was reached, not merely never approached.
      expect(mostPerKey).toBe(limits.limit);
    }
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await runLog.close();
    await storage.close();
  }
}

/**
 * Parents that ran, or were released, before every child had succeeded:
 * from each parent's runs (what it saw) and its history's release against
 * its children's finish times.
 */
function parentsReleasedEarly(parents: string[], records: JobRecord[], runs: Array<{ id: string; note?: string }>): string[] {
  const byId = new Map(records.map((r) => [r.id, r]));
  const out: string[] = [];
  for (const run of runs) if (parents.includes(run.id) && run.note !== "children-done") out.push(`${run.id} ran with ${run.note ?? "no note"}`);
  for (const id of parents) {
    const p = byId.get(id);
    if (!p) continue;
    const release = p.history.find((e) => e.state === JobState.Enqueued);
    const lastChild = Math.max(...(p.flow?.dependsOn ?? []).map((c) => byId.get(c)?.finishedAt ?? Infinity));
    // Times from different processes' clocks, each aligned with the store's to within a round trip.
    if (release && release.at < lastChild - CLOCK_SLACK_MS) out.push(`${id} released at ${release.at}, before its last child finished (${lastChild})`);
  }
  return out;
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

describeWithService("redis", await serviceUp("redis"), "chaos: kill workers on redis, jobs under concurrency limits", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it(
    "every job completes, none is lost, no key ever over its limit",
    async () => {
      const prefix = keys.next();
      await killRun("redis-limits", { kind: "redis", url: REDIS_URL, prefix }, { kind: "redis", url: REDIS_URL, key: `${prefix}chaos-runs` }, LIMITED);
    },
    timeout(55_000, 900_000),
  );
});

describeWithService("redis", await serviceUp("redis"), "chaos: kill workers on redis, jobs in flows", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it(
    "every job completes, none is lost, no parent released before all its children succeeded",
    async () => {
      const prefix = keys.next();
      await killRun("redis-flows", { kind: "redis", url: REDIS_URL, prefix }, { kind: "redis", url: REDIS_URL, key: `${prefix}chaos-runs` }, FLOWS);
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
      await killRun(
        "postgres",
        { kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 3 },
        { kind: "postgres", url: DATABASE_URL, schema },
      );
    },
    timeout(55_000, 900_000),
  );
});

describeWithService("postgres", await serviceUp("postgres"), "chaos: kill workers on postgres, jobs under concurrency limits", () => {
  afterAll(() => janitor.dropAll());
  it(
    "every job completes, none is lost, no key ever over its limit",
    async () => {
      const schema = janitor.next("qml_chaos");
      await killRun(
        "postgres-limits",
        { kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 3 },
        { kind: "postgres", url: DATABASE_URL, schema },
        LIMITED,
      );
    },
    timeout(55_000, 900_000),
  );
});

describeWithService("postgres", await serviceUp("postgres"), "chaos: kill workers on postgres, jobs in flows", () => {
  afterAll(() => janitor.dropAll());
  it(
    "every job completes, none is lost, no parent released before all its children succeeded",
    async () => {
      const schema = janitor.next("qml_chaos");
      await killRun(
        "postgres-flows",
        { kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 3 },
        { kind: "postgres", url: DATABASE_URL, schema },
        FLOWS,
      );
    },
    timeout(55_000, 900_000),
  );
});

describe("chaos: kill the server on sqlite", () => {
  it(
    "the server SIGKILLed and restarted on the same file: every job completes, none is lost, duplicates only after an expired lease",
    async () => {
      const runs: RunLogSpec = { kind: "sqlite", path: tempPath("runs.db"), module: betterSqlite3Path() };
      await killRun("sqlite", sqliteSpec(tempPath("jobs.db")), runs, { processes: 1, concurrency: scale(4, 20), kills: scale(3, 10) });
    },
    timeout(55_000, 900_000),
  );
});
